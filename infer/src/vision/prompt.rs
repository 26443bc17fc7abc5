//! SmolVLM's chat prompt with one image, as its chat template and Idefics3Processor write it:
//! the user's turn starts with the image, which stands in the text as a run of `<image>`
//! tokens (one per image token the connector makes) between `<fake_token_around_image>`s,
//! `<global-img>` first (the whole picture, as opposed to a tile), then the question, the end of
//! the turn, and "Assistant:" for the model to go on from.

pub const FAKE_IMAGE_TOKEN: &str = "<fake_token_around_image>";
pub const IMAGE_TOKEN: &str = "<image>";
pub const GLOBAL_IMAGE_TOKEN: &str = "<global-img>";
pub const END_OF_UTTERANCE: &str = "<end_of_utterance>";

/// What the model is asked when the caller asks nothing.
pub const DEFAULT_QUESTION: &str = "Describe this image.";

/// The prompt for `question` about one image of `image_tokens` tokens.
pub fn chat_prompt(question: &str, image_tokens: usize) -> String {
    format!(
        "<|im_start|>User:{FAKE_IMAGE_TOKEN}{GLOBAL_IMAGE_TOKEN}{}{FAKE_IMAGE_TOKEN}{question}{END_OF_UTTERANCE}\nAssistant:",
        IMAGE_TOKEN.repeat(image_tokens)
    )
}

#[cfg(test)]
mod tests {
    use super::chat_prompt;

    #[test]
    fn the_image_comes_first_in_the_users_turn() {
        assert_eq!(
            chat_prompt("What is it?", 2),
            "<|im_start|>User:<fake_token_around_image><global-img><image><image>\
             <fake_token_around_image>What is it?<end_of_utterance>\nAssistant:"
        );
    }
}
