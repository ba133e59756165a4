//! `ChatTemplate`: the ChatML prompt format of SmolLM2 and Qwen instruct models, rendered by
//! our code (no Jinja engine). A checkpoint's Jinja template is only inspected for its default
//! system prompt, the one difference between the ChatML variants this crate serves.
//!
//! ```text
//! <|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n
//! ```

/// Opens a turn; the role name and a newline follow.
pub const IM_START: &str = "<|im_start|>";
/// Closes a turn.
pub const IM_END: &str = "<|im_end|>";

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

/// A ChatML template with an optional default system prompt, inserted when a conversation does
/// not start with a system turn (SmolLM2: "You are a helpful AI assistant named SmolLM, trained
/// by Hugging Face"; Qwen2.5: "You are Qwen, created by Alibaba Cloud. You are a helpful
/// assistant."; Qwen3: none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatTemplate {
    /// System prompt used when the conversation has none.
    pub default_system: Option<String>,
}

impl ChatTemplate {
    /// ChatML with the given default system prompt.
    pub fn chatml(default_system: Option<&str>) -> Self {
        Self {
            default_system: default_system.map(str::to_string),
        }
    }

    /// Reads a checkpoint's Jinja chat template: `None` unless it is ChatML (mentions
    /// `<|im_start|>`); otherwise ChatML with the first literal system text the template writes
    /// (`'<|im_start|>system\n…<|im_end|>'` without template expressions inside), if any.
    pub fn from_jinja(source: &str) -> Option<Self> {
        if !source.contains(IM_START) {
            return None;
        }
        let opener = format!("{IM_START}system");
        let default_system = source.match_indices(&opener).find_map(|(at, _)| {
            let rest = &source[at + opener.len()..];
            let rest = rest
                .strip_prefix('\n')
                .or_else(|| rest.strip_prefix("\\n"))?;
            let (text, _) = rest.split_once(IM_END)?;
            let literal = !text.contains(['\'', '"', '{', '}', '+']);
            (literal && !text.is_empty()).then(|| text.to_string())
        });
        Some(Self { default_system })
    }

    /// The prompt text for `messages` followed by the opening of an assistant turn.
    pub fn render(&self, messages: &[ChatMessage]) -> String {
        let mut out = String::new();
        let has_system = messages.first().is_some_and(|m| m.role == "system");
        if let (false, Some(system)) = (has_system, &self.default_system) {
            push_turn(&mut out, "system", system);
        }
        for message in messages {
            push_turn(&mut out, &message.role, &message.content);
        }
        out.push_str(IM_START);
        out.push_str("assistant\n");
        out
    }

    /// The prompt text for a single user turn (plus the default system prompt, if any).
    pub fn user_prompt(&self, user: &str) -> String {
        self.render(&[ChatMessage::new("user", user)])
    }
}

fn push_turn(out: &mut String, role: &str, content: &str) {
    out.push_str(IM_START);
    out.push_str(role);
    out.push('\n');
    out.push_str(content);
    out.push_str(IM_END);
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The template string stored in SmolLM2-135M-Instruct's GGUF (`tokenizer.chat_template`).
    const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    /// The system part of the Qwen2.5 instruct template as `tokenizer_config.json` stores it
    /// (escaped newlines; the first system opener is followed by an expression).
    const QWEN25: &str = r#"{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}{%- else %}{{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}{%- endif %}"#;

    /// Qwen3: a system turn only when the conversation has one.
    const QWEN3: &str = r#"{%- if messages[0].role == 'system' %}{{- '<|im_start|>system\n' + messages[0].content + '<|im_end|>\n\n' }}{%- endif %}"#;

    #[test]
    fn default_system_prompts_are_read_from_templates() {
        let smol = ChatTemplate::from_jinja(SMOLLM2).unwrap();
        assert_eq!(
            smol.default_system.as_deref(),
            Some("You are a helpful AI assistant named SmolLM, trained by Hugging Face")
        );
        let qwen = ChatTemplate::from_jinja(QWEN25).unwrap();
        assert_eq!(
            qwen.default_system.as_deref(),
            Some("You are Qwen, created by Alibaba Cloud. You are a helpful assistant.")
        );
        assert_eq!(
            ChatTemplate::from_jinja(QWEN3).unwrap().default_system,
            None
        );
        assert_eq!(ChatTemplate::from_jinja("{{ bos_token }}[INST]"), None);
    }

    #[test]
    fn render_inserts_the_default_system_turn_only_when_missing() {
        let t = ChatTemplate::chatml(Some("Be brief."));
        assert_eq!(
            t.user_prompt("Hi"),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        let own = [
            ChatMessage::new("system", "S"),
            ChatMessage::new("user", "U"),
        ];
        assert_eq!(
            t.render(&own),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
        );
        assert_eq!(
            ChatTemplate::chatml(None).user_prompt("Hi"),
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }
}
