//! `Codec`: how a problem becomes prompt ids and how generated ids become text, for the two
//! kinds of policy a run can train — the scratch decoder on the task's character vocabulary, or
//! a pretrained model with its own tokenizer (and, optionally, its chat template).

use epgrpo_eval::Problem;
use epgrpo_models::TextTokenizer;

use crate::error::CliError;
use crate::task::CharVocab;

/// Where `{question}` goes in `[task] prompt`.
pub const QUESTION_SLOT: &str = "{question}";

/// Text ↔ ids for one run.
#[derive(Debug, Clone)]
pub struct Codec {
    /// `[task] prompt` with the `{question}` slot.
    template: String,
    vocabulary: Vocabulary,
}

#[derive(Debug, Clone)]
enum Vocabulary {
    /// `<bos>` + characters; answers end with `<eos>`.
    Chars,
    /// A Hugging Face tokenizer; `chat` wraps the prompt as one user turn of its template.
    Tokenizer {
        tokenizer: TextTokenizer,
        chat: bool,
    },
}

impl Codec {
    /// The character vocabulary of the scratch decoder.
    pub fn chars(template: &str) -> Self {
        Self {
            template: template.to_string(),
            vocabulary: Vocabulary::Chars,
        }
    }

    /// A pretrained model's tokenizer. With `chat`, the tokenizer must carry a chat template.
    pub fn text(template: &str, tokenizer: TextTokenizer, chat: bool) -> Result<Self, CliError> {
        if tokenizer.stop_tokens().is_empty() {
            return Err(CliError::Input(format!(
                "{}: the tokenizer has no end-of-sequence token (eos, <|im_end|> or \
                 <|endoftext|>), so answers could never end",
                tokenizer.origin().display()
            )));
        }
        if chat {
            // A missing template, or one that does not compile, names its file and field.
            tokenizer.chat_template().map_err(|e| {
                CliError::Input(format!(
                    "model.chat_template is true but the model's chat template cannot be used \
                     (set it to false to send prompts as they are): {e}"
                ))
            })?;
        }
        Ok(Self {
            template: template.to_string(),
            vocabulary: Vocabulary::Tokenizer { tokenizer, chat },
        })
    }

    /// The tokenizer of a pretrained policy (`None` for the character vocabulary).
    pub fn tokenizer(&self) -> Option<&TextTokenizer> {
        match &self.vocabulary {
            Vocabulary::Chars => None,
            Vocabulary::Tokenizer { tokenizer, .. } => Some(tokenizer),
        }
    }

    /// The text put to the model for `problem`: the template with the question filled in.
    pub fn prompt_text(&self, problem: &Problem) -> String {
        self.template.replace(QUESTION_SLOT, &problem.question)
    }

    /// Prompt ids of `problem`.
    pub fn prompt(&self, problem: &Problem) -> Result<Vec<u32>, CliError> {
        let text = self.prompt_text(problem);
        match &self.vocabulary {
            Vocabulary::Chars => CharVocab::prompt(&text).map_err(|c| unencodable(problem, c)),
            Vocabulary::Tokenizer { tokenizer, chat } => if *chat {
                tokenizer.encode_chat(&text)
            } else {
                tokenizer.encode(&text)
            }
            .map_err(|e| CliError::Input(format!("problem {}: {e}", problem.id))),
        }
    }

    /// Ids of a demonstration answer (supervised warm start), ending with the stop token.
    pub fn answer(&self, problem: &Problem) -> Result<Vec<u32>, CliError> {
        let mut ids = match &self.vocabulary {
            Vocabulary::Chars => {
                CharVocab::encode(&problem.answer).map_err(|c| unencodable(problem, c))?
            }
            Vocabulary::Tokenizer { tokenizer, .. } => tokenizer
                .encode(&problem.answer)
                .map_err(|e| CliError::Input(format!("problem {}: {e}", problem.id)))?,
        };
        ids.push(self.stop_tokens()[0]);
        Ok(ids)
    }

    /// The text of generated ids, without special tokens.
    pub fn decode(&self, ids: &[u32]) -> String {
        match &self.vocabulary {
            Vocabulary::Chars => CharVocab::decode(ids),
            // Decoding fails only on ids outside the vocabulary, which the model cannot emit;
            // an empty answer is then simply wrong.
            Vocabulary::Tokenizer { tokenizer, .. } => {
                tokenizer.decode(ids, true).unwrap_or_default()
            }
        }
    }

    /// Ids that end an answer (the first one ends demonstrations).
    pub fn stop_tokens(&self) -> Vec<u32> {
        match &self.vocabulary {
            Vocabulary::Chars => vec![CharVocab::EOS],
            Vocabulary::Tokenizer { tokenizer, .. } => tokenizer.stop_tokens().to_vec(),
        }
    }

    /// Filler id of padded positions (never attended to, never scored).
    pub fn pad(&self) -> u32 {
        match &self.vocabulary {
            Vocabulary::Chars => CharVocab::PAD,
            Vocabulary::Tokenizer { tokenizer, .. } => tokenizer.stop_tokens()[0],
        }
    }
}

fn unencodable(problem: &Problem, c: char) -> CliError {
    CliError::Input(format!(
        "problem {} (line {}): character {c:?} is not in the scratch model's vocabulary \
         (digits, + - * =); use a pretrained model ([model] path) for text problems",
        problem.id, problem.line
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(question: &str, answer: &str) -> Problem {
        Problem {
            id: "p".into(),
            question: question.into(),
            answer: answer.into(),
            line: 3,
        }
    }

    #[test]
    fn character_codec_fills_the_template_and_ends_answers_with_eos() {
        let codec = Codec::chars("{question}=");
        let p = problem("12+7", "19");
        assert_eq!(codec.prompt_text(&p), "12+7=");
        let prompt = codec.prompt(&p).unwrap();
        assert_eq!(prompt[0], CharVocab::BOS);
        assert_eq!(CharVocab::decode(&prompt[1..]), "12+7=");
        let answer = codec.answer(&p).unwrap();
        assert_eq!(answer.last(), Some(&CharVocab::EOS));
        assert_eq!(codec.decode(&answer), "19");
        let err = codec.prompt(&problem("what is 2+2", "4")).unwrap_err();
        assert!(err.to_string().contains("line 3"), "{err}");
    }

    /// The tokenizer fixture of epgrpo-models (`make_tokenizer.py`): its `expected.json` holds
    /// transformers' `apply_chat_template` ids of one user turn.
    fn fixture_tokenizer() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../epgrpo-models/tests/fixtures/tokenizer")
    }

    #[test]
    fn chat_prompts_are_the_models_template_and_a_missing_one_is_named() {
        let dir = fixture_tokenizer();
        let expected: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap())
                .unwrap();
        let user = expected["chat"]["user"].as_str().unwrap();
        let ids: Vec<u32> = serde_json::from_value(expected["chat"]["ids"].clone()).unwrap();
        let tok = TextTokenizer::from_dir(&dir).unwrap();
        let codec = Codec::text(QUESTION_SLOT, tok, true).unwrap();
        assert_eq!(codec.prompt(&problem(user, "")).unwrap(), ids);

        // Without a chat_template in tokenizer_config.json: chat mode names the file and field.
        let bare = std::env::temp_dir().join(format!("epgrpo-codec-{}", std::process::id()));
        std::fs::create_dir_all(&bare).unwrap();
        std::fs::copy(dir.join("tokenizer.json"), bare.join("tokenizer.json")).unwrap();
        std::fs::write(
            bare.join("tokenizer_config.json"),
            r#"{"eos_token": "<|im_end|>"}"#,
        )
        .unwrap();
        let tok = TextTokenizer::from_dir(&bare).unwrap();
        let err = Codec::text(QUESTION_SLOT, tok.clone(), true).unwrap_err();
        assert!(
            err.to_string().contains("tokenizer_config.json")
                && err
                    .to_string()
                    .contains("no chat template (`chat_template`"),
            "{err}"
        );
        assert!(Codec::text(QUESTION_SLOT, tok, false).is_ok());
    }
}
