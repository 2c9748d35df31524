package io.sparseserve.engine;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/** Collects a sequence's output; {@link #result} completes when it finishes or fails. */
class CollectingSink implements TokenSink {
    record Result(String text, int[] tokenIds, FinishReason reason, Finished finished, List<Delta> deltas) {}

    final List<Delta> deltas = new ArrayList<>();
    final CompletableFuture<Result> result = new CompletableFuture<>();

    @Override
    public void onDelta(Delta delta) {
        deltas.add(delta);
    }

    @Override
    public void onFinish(Delta last, Finished finished) {
        deltas.add(last);
        StringBuilder text = new StringBuilder();
        List<Integer> ids = new ArrayList<>();
        for (Delta d : deltas) {
            text.append(d.text());
            for (int id : d.tokenIds()) ids.add(id);
        }
        result.complete(new Result(text.toString(), ids.stream().mapToInt(Integer::intValue).toArray(), finished.reason(),
                finished, List.copyOf(deltas)));
    }

    @Override
    public void onError(Throwable error) {
        result.completeExceptionally(error);
    }

    Result await() throws Exception {
        return result.get(60, TimeUnit.SECONDS);
    }
}
