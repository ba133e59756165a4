//! The scratch decoder's character vocabulary ([`CharVocab`]) as Hugging Face tokenizer files,
//! written into a run's exported model directory so that the directory is complete: `epgrpo
//! eval --model RUN/model`, `epgrpo generate --model RUN/model` and transformers read the ids
//! the run trained on.
//!
//! `tokenizer.json` is a word-level model over single characters (a pre-tokenizer splits the
//! text into characters, a `Fuse` decoder joins them back without spaces); `<pad>`, `<bos>` and
//! `<eos>` are special tokens. A character outside the vocabulary cannot be encoded (there is no
//! unknown token). `tokenizer_config.json` names the special tokens and carries a chat template
//! that writes one user turn as the run's prompt did: `<bos>` and `[task] prompt` with the
//! message in the `{question}` slot, so that chat mode (the default of `eval` and `generate`)
//! reproduces the training prompts exactly.

use std::path::Path;

use epgrpo_models::tokenizer::{TOKENIZER_CONFIG_FILE, TOKENIZER_FILE};
use serde_json::{Value, json};

use crate::codec::QUESTION_SLOT;
use crate::error::CliError;
use crate::task::CharVocab;

/// Writes `dir/tokenizer.json` and `dir/tokenizer_config.json` for the character vocabulary
/// and the prompt template `prompt` (`[task] prompt`, with one `{question}` slot).
pub fn write(dir: &Path, prompt: &str) -> Result<(), CliError> {
    let tokens: Vec<String> = (0..CharVocab::SIZE as u32)
        .map(|id| CharVocab::token(id).expect("every id below SIZE has a token"))
        .collect();
    let special = [CharVocab::PAD, CharVocab::BOS, CharVocab::EOS];
    let added: Vec<Value> = special
        .iter()
        .map(|&id| {
            json!({
                "id": id,
                "content": tokens[id as usize],
                "single_word": false,
                "lstrip": false,
                "rstrip": false,
                "normalized": false,
                "special": true,
            })
        })
        .collect();
    let vocab: serde_json::Map<String, Value> = tokens
        .iter()
        .enumerate()
        .map(|(id, token)| (token.clone(), json!(id)))
        .collect();
    let tokenizer = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": {
            "type": "Split",
            "pattern": {"Regex": "."},
            "behavior": "Isolated",
            "invert": false,
        },
        "post_processor": null,
        "decoder": {"type": "Fuse"},
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"},
    });
    let (before, after) = prompt.split_once(QUESTION_SLOT).unwrap_or((prompt, ""));
    let literal = |text: &str| Value::String(text.to_string()).to_string();
    let template = format!(
        "{{{{ bos_token }}}}{{% for message in messages %}}{{% if message['role'] == 'user' %}}\
         {{{{ {} }}}}{{{{ message['content'] }}}}{{{{ {} }}}}{{% endif %}}{{% endfor %}}",
        literal(before),
        literal(after)
    );
    let config = json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "clean_up_tokenization_spaces": false,
        "pad_token": tokens[CharVocab::PAD as usize],
        "bos_token": tokens[CharVocab::BOS as usize],
        "eos_token": tokens[CharVocab::EOS as usize],
        "chat_template": template,
    });
    for (name, value) in [(TOKENIZER_FILE, tokenizer), (TOKENIZER_CONFIG_FILE, config)] {
        let path = dir.join(name);
        std::fs::write(&path, format!("{value:#}\n"))
            .map_err(|e| CliError::Internal(format!("{}: {e}", path.display())))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use epgrpo_models::TextTokenizer;

    #[test]
    fn the_files_read_back_as_the_character_vocabulary() {
        let dir = std::env::temp_dir().join(format!("epgrpo-char-tok-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        write(&dir, "{question}=").unwrap();
        let tokenizer = TextTokenizer::from_dir(&dir).unwrap();
        assert_eq!(tokenizer.vocab_size(), CharVocab::SIZE);
        assert_eq!(tokenizer.stop_tokens(), [CharVocab::EOS]);
        // Raw text and the chat prompt give the ids of the character codec.
        assert_eq!(
            tokenizer.encode("12+7=").unwrap(),
            CharVocab::encode("12+7=").unwrap()
        );
        assert_eq!(
            tokenizer.encode_chat("12+7").unwrap(),
            CharVocab::prompt("12+7=").unwrap()
        );
        let mut answer = CharVocab::encode("-19").unwrap();
        answer.push(CharVocab::EOS);
        assert_eq!(tokenizer.decode(&answer, true).unwrap(), "-19");
        assert!(
            tokenizer.encode("1 + 2").is_err(),
            "a space is not in the vocabulary"
        );
        // A template with text on both sides of the slot.
        write(&dir, "*{question}==").unwrap();
        let tokenizer = TextTokenizer::from_dir(&dir).unwrap();
        assert_eq!(
            tokenizer.encode_chat("3-4").unwrap(),
            CharVocab::prompt("*3-4==").unwrap()
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
