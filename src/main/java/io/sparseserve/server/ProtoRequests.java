package io.sparseserve.server;

import io.sparseserve.api.v1.ChatMessage;
import io.sparseserve.api.v1.GenerateRequest;
import io.sparseserve.api.v1.TokenLogprobs;
import io.sparseserve.api.v1.TopLogprob;
import io.sparseserve.engine.GenerationRequest;
import io.sparseserve.engine.SamplingParams;
import io.sparseserve.engine.TopLogprobs;
import io.sparseserve.model.ChatTemplate;
import io.sparseserve.model.InvalidInputException;
import io.sparseserve.model.Tokenizer;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Wire requests to engine requests: defaults for unset fields, tokenization, and the checks that only the edge can
 * make (one prompt form, a prompt size the context can hold). The engine validates the rest
 * ({@link GenerationRequest#validate}).
 */
final class ProtoRequests {
    static final int DEFAULT_MAX_NEW_TOKENS = 16;

    private final Tokenizer tokenizer;
    private final int maxPromptBytes;
    private final ChatTemplate chatTemplate; // null: the model has none

    ProtoRequests(Tokenizer tokenizer, int contextLength) {
        this(tokenizer, contextLength, null);
    }

    ProtoRequests(Tokenizer tokenizer, int contextLength, ChatTemplate chatTemplate) {
        this.tokenizer = tokenizer;
        this.maxPromptBytes = maxPromptBytes(tokenizer, contextLength);
        this.chatTemplate = chatTemplate;
    }

    /**
     * A text longer than this cannot fit in the context: each token decodes to at most {@code maxTokenBytes} bytes,
     * so the prompt would need more tokens than the context has positions. Checking the size first keeps the
     * tokenizer's work on the event loop bounded.
     */
    static int maxPromptBytes(Tokenizer tokenizer, int contextLength) {
        int perToken = tokenizer.isByteLevel() ? tokenizer.maxTokenBytes() : 64;
        return (int) Math.min(Integer.MAX_VALUE, (long) contextLength * Math.max(1, perToken));
    }

    int maxPromptBytes() {
        return maxPromptBytes;
    }

    /**
     * The bytes of text a request makes the tokenizer read: its prompt, or its messages (rendered through the chat
     * template first), so that a long conversation goes to the tokenizer pool as a long prompt does.
     */
    static int textBytes(GenerateRequest r) {
        long bytes = r.getPromptBytes().size();
        for (ChatMessage m : r.getMessagesList()) bytes += m.getSerializedSize();
        return (int) Math.min(bytes, Integer.MAX_VALUE);
    }

    GenerationRequest toEngine(GenerateRequest r) {
        int[] ids;
        if (r.getMessagesCount() > 0) {
            if (!r.getPrompt().isEmpty() || r.getPromptTokenIdsCount() > 0) {
                throw new InvalidInputException("messages and " + (r.getPrompt().isEmpty() ? "prompt_token_ids" : "prompt")
                        + " are both set; set exactly one of prompt, prompt_token_ids and messages");
            }
            List<Map<String, Object>> messages = new ArrayList<>(r.getMessagesCount());
            for (ChatMessage m : r.getMessagesList()) {
                Map<String, Object> msg = ChatTemplate.message(m.getRole(), m.getContent());
                if (!m.getName().isEmpty()) msg.put("name", m.getName());
                if (!m.getToolCallId().isEmpty()) msg.put("tool_call_id", m.getToolCallId());
                messages.add(msg);
            }
            ids = chatPromptIds(messages, null, true);
        } else {
            ids = promptIds(r.getPrompt(), r.getPromptBytes().size(), r.getPromptTokenIdsList(), "prompt_token_ids");
        }
        SamplingParams sampling = new SamplingParams(
                r.hasTemperature() ? r.getTemperature() : 0f,
                r.getTopK(),
                r.hasTopP() ? r.getTopP() : 1f,
                r.getMinP(),
                r.hasRepetitionPenalty() ? r.getRepetitionPenalty() : 1f,
                r.getPresencePenalty(),
                r.getFrequencyPenalty(),
                r.hasSeed() ? r.getSeed() : io.sparseserve.engine.Seeds.fresh());
        return new GenerationRequest(r.getRequestId(), ids, sampling,
                r.hasMaxNewTokens() ? r.getMaxNewTokens() : DEFAULT_MAX_NEW_TOKENS,
                r.getMinNewTokens(), r.getStopList(), r.getStopTokenIdsList().stream().mapToInt(Integer::intValue).toArray(),
                r.getIgnoreEos(), logprobs(r), !r.hasSkipSpecialTokens() || r.getSkipSpecialTokens());
    }

    /**
     * The ids of a conversation: the chat template's prompt, tokenized without adding special tokens (the template
     * writes them, as transformers' apply_chat_template(tokenize=True) does). A template error is the client's.
     */
    int[] chatPromptIds(List<Map<String, Object>> messages, List<Object> tools, boolean addGenerationPrompt) {
        if (chatTemplate == null) {
            throw new InvalidInputException("this model has no chat template (tokenizer_config.json chat_template or "
                    + "chat_template.jinja); send a prompt instead of messages");
        }
        String prompt = chatTemplate.render(messages, tools, addGenerationPrompt);
        if (prompt.length() > maxPromptBytes) {
            throw new InvalidInputException("the chat template's prompt is " + prompt.length() + " characters; at most "
                    + maxPromptBytes + " bytes can fit in the context length");
        }
        return tokenizer.encode(prompt);
    }

    private static int logprobs(GenerateRequest r) {
        if (!r.hasLogprobs()) return -1;
        if (r.getLogprobs() < 0) {
            throw new InvalidInputException("logprobs must be in [0, " + GenerationRequest.MAX_LOGPROBS + "], got " + r.getLogprobs());
        }
        return r.getLogprobs();
    }

    /** The prompt's ids from its text or its ids (exactly one of them must be given). */
    int[] promptIds(String text, int textBytes, List<Integer> ids, String idsField) {
        if (!text.isEmpty() && !ids.isEmpty()) {
            throw new InvalidInputException("prompt and " + idsField + " are both set; set exactly one");
        }
        if (!ids.isEmpty()) return ids.stream().mapToInt(Integer::intValue).toArray();
        if (textBytes > maxPromptBytes) {
            throw new InvalidInputException("prompt is " + textBytes + " bytes; at most " + maxPromptBytes
                    + " bytes can fit in the context length");
        }
        return tokenizer.encodePrompt(text);
    }

    List<TokenLogprobs> logprobs(List<TopLogprobs> list) {
        if (list.isEmpty()) return List.of();
        List<TokenLogprobs> out = new ArrayList<>(list.size());
        for (TopLogprobs lp : list) {
            TokenLogprobs.Builder b = TokenLogprobs.newBuilder().setTokenId(lp.chosenId()).setToken(token(lp.chosenId()))
                    .setLogprob(lp.chosenLogprob());
            for (int i = 0; i < lp.ids().length; i++) {
                b.addTop(TopLogprob.newBuilder().setTokenId(lp.ids()[i]).setToken(token(lp.ids()[i])).setLogprob(lp.logprobs()[i]));
            }
            out.add(b.build());
        }
        return out;
    }

    String token(int id) {
        String t = tokenizer.token(id);
        return t == null ? "" : t;
    }
}
