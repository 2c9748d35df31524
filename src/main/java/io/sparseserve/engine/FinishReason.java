package io.sparseserve.engine;

/** Why a sequence stopped generating (Hugging Face TGI's finish reasons). */
public enum FinishReason {
    /** max_new_tokens reached. */
    LENGTH,
    /** The model's end-of-sequence token, or one of the request's stop token ids. */
    EOS_TOKEN,
    /** One of the request's stop strings appeared in the text (it is not emitted). */
    STOP_SEQUENCE
}
