//! `ChatTemplate`: a checkpoint's own Jinja chat template (`chat_template` of
//! `tokenizer_config.json`, `tokenizer.chat_template` of a GGUF), rendered with `minijinja` the
//! way transformers' `apply_chat_template` renders it with Jinja2:
//!
//! * `trim_blocks` and `lstrip_blocks` on, a single trailing newline dropped;
//! * the context holds `messages` (`role`/`content` maps), `add_generation_prompt`, `tools` and
//!   `documents` (both `none`) and the named special tokens the tokenizer has (`bos_token`,
//!   `eos_token`, …);
//! * the globals `raise_exception(message)` (fails the render with the message) and
//!   `strftime_now(format)` (the current local date and time, as Python's `datetime.now()`);
//! * Python's string and dict methods (`.strip()`, `.startswith()`, `.split()`, `.items()`, …)
//!   from `minijinja-contrib`'s `pycompat`;
//! * booleans and `none` printed as Python prints them (`True`, `False`, `None`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use minijinja::value::ValueKind;
use minijinja::{Environment, Error, ErrorKind, Output, State, Value, syntax::SyntaxConfig};

use crate::error::ModelError;

/// Name under which the template is stored in its environment.
const TEMPLATE_NAME: &str = "chat_template";

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text of the turn.
    pub content: String,
}

impl ChatMessage {
    /// A turn with the given role.
    pub fn new(role: &str, content: &str) -> Self {
        Self {
            role: role.to_string(),
            content: content.to_string(),
        }
    }
}

/// The named special tokens transformers passes to a chat template (its `special_tokens_map`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SpecialToken {
    /// `bos_token`: begins a sequence.
    Bos,
    /// `eos_token`: ends a sequence (or a turn).
    Eos,
    /// `unk_token`: stands for unknown text.
    Unk,
    /// `sep_token`: separates segments.
    Sep,
    /// `pad_token`: fills padded positions.
    Pad,
    /// `cls_token`: classification token.
    Cls,
    /// `mask_token`: masked-language-model token.
    Mask,
}

impl SpecialToken {
    /// Every named special token.
    pub const ALL: [SpecialToken; 7] = [
        Self::Bos,
        Self::Eos,
        Self::Unk,
        Self::Sep,
        Self::Pad,
        Self::Cls,
        Self::Mask,
    ];

    /// Its key in `tokenizer_config.json`, which is also its variable name in templates.
    pub fn config_key(self) -> &'static str {
        match self {
            Self::Bos => "bos_token",
            Self::Eos => "eos_token",
            Self::Unk => "unk_token",
            Self::Sep => "sep_token",
            Self::Pad => "pad_token",
            Self::Cls => "cls_token",
            Self::Mask => "mask_token",
        }
    }

    /// The GGUF metadata key of its id, as llama.cpp's converter writes it.
    pub fn gguf_key(self) -> &'static str {
        match self {
            Self::Bos => "tokenizer.ggml.bos_token_id",
            Self::Eos => "tokenizer.ggml.eos_token_id",
            Self::Unk => "tokenizer.ggml.unknown_token_id",
            Self::Sep => "tokenizer.ggml.seperator_token_id",
            Self::Pad => "tokenizer.ggml.padding_token_id",
            Self::Cls => "tokenizer.ggml.cls_token_id",
            Self::Mask => "tokenizer.ggml.mask_token_id",
        }
    }
}

/// The text of each special token a tokenizer names.
pub type SpecialTokens = BTreeMap<SpecialToken, String>;

/// A compiled Jinja chat template with the special tokens it may refer to, and where it was read
/// (for errors). Two templates are equal when their source and special tokens are.
#[derive(Debug, Clone)]
pub struct ChatTemplate {
    source: String,
    special: SpecialTokens,
    file: PathBuf,
    key: String,
    env: Environment<'static>,
}

impl PartialEq for ChatTemplate {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source && self.special == other.special
    }
}

impl ChatTemplate {
    /// Compiles `source`, read from the field or metadata key `key` of `file`. A template that
    /// does not compile is an error naming both, with minijinja's message and template line.
    pub fn new(
        source: &str,
        special: SpecialTokens,
        file: &Path,
        key: &str,
    ) -> Result<Self, ModelError> {
        Self::compile(source)
            .map(|env| Self {
                source: source.to_string(),
                special,
                file: file.to_path_buf(),
                key: key.to_string(),
                env,
            })
            .map_err(|reason| template_error(file, key, &reason))
    }

    fn compile(source: &str) -> Result<Environment<'static>, String> {
        let mut env = Environment::new();
        env.set_syntax(transformers_syntax());
        // Templates are never HTML: no auto-escaping, whatever the name.
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.set_formatter(python_formatter);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_template_owned(TEMPLATE_NAME, source.to_string())
            .map_err(describe)?;
        Ok(env)
    }

    /// The Jinja source as the checkpoint stores it.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The special tokens the template sees.
    pub fn special_tokens(&self) -> &SpecialTokens {
        &self.special
    }

    /// The prompt text of `messages`; with `add_generation_prompt`, followed by whatever the
    /// template writes to open the assistant's turn. The error names the template's file and
    /// key, with minijinja's message or the template's own (`raise_exception`).
    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, ModelError> {
        let messages: Vec<Value> = messages
            .iter()
            .map(|m| {
                Value::from(BTreeMap::from([
                    ("role", Value::from(m.role.as_str())),
                    ("content", Value::from(m.content.as_str())),
                ]))
            })
            .collect();
        let mut context: BTreeMap<&str, Value> = self
            .special
            .iter()
            .map(|(token, text)| (token.config_key(), Value::from(text.as_str())))
            .collect();
        context.insert("messages", Value::from(messages));
        context.insert("add_generation_prompt", Value::from(add_generation_prompt));
        context.insert("tools", Value::from(()));
        context.insert("documents", Value::from(()));
        self.env
            .get_template(TEMPLATE_NAME)
            .and_then(|template| template.render(Value::from(context)))
            .map_err(|e| template_error(&self.file, &self.key, &describe(e)))
    }

    /// The prompt text of one user turn followed by the opening of the assistant's turn (the
    /// template adds its default system prompt, if it has one).
    pub fn user_prompt(&self, user: &str) -> Result<String, ModelError> {
        self.render(&[ChatMessage::new("user", user)], true)
    }
}

/// Jinja2's settings in transformers: `trim_blocks=True, lstrip_blocks=True`.
fn transformers_syntax() -> SyntaxConfig {
    let mut builder = SyntaxConfig::builder();
    builder.trim_blocks(true).lstrip_blocks(true);
    // The default delimiters always build.
    builder.build().unwrap_or_default()
}

/// Prints values as Jinja2 does: Python's spelling for booleans and `None`, the rest as minijinja
/// prints it.
fn python_formatter(out: &mut Output, state: &mut State, value: &Value) -> Result<(), Error> {
    match value.kind() {
        ValueKind::Bool if value.is_true() => Ok(out.write_str("True")?),
        ValueKind::Bool => Ok(out.write_str("False")?),
        ValueKind::None => Ok(out.write_str("None")?),
        _ => minijinja::escape_formatter(out, state, value),
    }
}

fn raise_exception(message: String) -> Result<Value, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, message))
}

fn strftime_now(format: String) -> Result<String, Error> {
    let mut out = String::new();
    write!(out, "{}", chrono::Local::now().format(&format)).map_err(|_| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("strftime_now: {format:?} is not a strftime format"),
        )
    })?;
    Ok(out)
}

fn template_error(file: &Path, key: &str, reason: &str) -> ModelError {
    ModelError::Tokenizer {
        file: file.to_path_buf(),
        reason: format!("chat template `{key}`: {reason}"),
    }
}

/// minijinja's message with the template line it names, and its cause if any.
fn describe(error: Error) -> String {
    let mut text = match (error.kind(), error.detail()) {
        (ErrorKind::InvalidOperation, Some(detail)) => detail.to_string(),
        (kind, Some(detail)) => format!("{kind}: {detail}"),
        (kind, None) => kind.to_string(),
    };
    if let Some(line) = error.line() {
        let _ = write!(text, " (line {line} of the template)");
    }
    let mut cause = std::error::Error::source(&error);
    while let Some(inner) = cause {
        let _ = write!(text, ": {inner}");
        cause = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(source: &str) -> ChatTemplate {
        ChatTemplate::new(
            source,
            SpecialTokens::new(),
            Path::new("model/tokenizer_config.json"),
            "chat_template",
        )
        .unwrap()
    }

    #[test]
    fn raise_exception_fails_the_render_with_the_templates_message() {
        let t = compile(
            "{% for m in messages %}{% if m.role == 'tool' %}\
             {{ raise_exception('Tool turns are not supported') }}{% endif %}{% endfor %}ok",
        );
        assert_eq!(t.user_prompt("hi").unwrap(), "ok");
        let err = t
            .render(&[ChatMessage::new("tool", "42")], false)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "model/tokenizer_config.json: tokenizer: chat template `chat_template`: \
                 Tool turns are not supported"
            ) && err.contains("line 1"),
            "{err}"
        );
    }

    #[test]
    fn syntax_errors_name_the_file_key_and_line() {
        let err = ChatTemplate::new(
            "{% for m in messages %}\n{% if %}",
            SpecialTokens::new(),
            Path::new("x.gguf"),
            "tokenizer.chat_template",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("x.gguf: tokenizer: chat template `tokenizer.chat_template`: ")
                && err.contains("syntax error")
                && err.contains("line 2"),
            "{err}"
        );
    }

    /// Today as coreutils' `date` writes it in the C locale (the format Llama 3.1 templates use).
    fn date_command(format: &str) -> String {
        let out = std::process::Command::new("date")
            .env("LC_ALL", "C")
            .arg(format!("+{format}"))
            .output()
            .expect("the `date` command");
        String::from_utf8(out.stdout)
            .unwrap()
            .trim_end()
            .to_string()
    }

    #[test]
    fn strftime_now_formats_the_current_date() {
        let t = compile("{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%Y-%m-%d') }}");
        let before = (date_command("%d %b %Y"), date_command("%Y-%m-%d"));
        let text = t.render(&[], false).unwrap();
        let after = (date_command("%d %b %Y"), date_command("%Y-%m-%d"));
        // The day may change between the calls.
        let today = [before, after].map(|(a, b)| format!("{a}|{b}"));
        assert!(today.contains(&text), "{text} vs {today:?}");
        let err = compile("{{ strftime_now('%Q') }}")
            .render(&[], false)
            .unwrap_err();
        assert!(err.to_string().contains("not a strftime format"), "{err}");
    }

    #[test]
    fn special_tokens_and_none_tools_are_in_the_context() {
        let t = ChatTemplate::new(
            "{{ bos_token }}{% if eos_token is not defined and tools is none \
             and documents is none %}|ok{% endif %}",
            SpecialTokens::from([(SpecialToken::Bos, "<s>".to_string())]),
            Path::new("t.json"),
            "chat_template",
        )
        .unwrap();
        assert_eq!(t.render(&[], false).unwrap(), "<s>|ok");
    }
}
