package io.sparseserve.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;

/** The step description: rows of logits per output kind, and its bounds. */
class StepTest {

    @Test
    void logitRowsCountOnlyTheSequencesThatWantLogits() {
        Step s = new Step(32, 4);
        int[] ids = new int[10];
        s.add(ids, 0, 5, 0, new int[] {0}, 1, Step.Output.ALL_LOGITS);
        s.add(ids, 0, 3, 0, new int[] {1}, 1, Step.Output.LAST_ARGMAX);
        s.add(ids, 0, 1, 7, new int[] {2}, 1, Step.Output.LAST_LOGITS);
        assertEquals(9, s.tokens());
        assertEquals(6, s.logitRows());
        assertEquals(0, s.logitRow(0));
        assertEquals(5, s.logitRow(2));
        assertEquals(0, s.rows(1));
        assertEquals(7, s.lastToken(1));
        assertEquals(7, s.positions()[8]);
        assertEquals(2, s.tokenSeq()[8]);
        s.clear();
        assertEquals(0, s.logitRows());
    }

    @Test
    void aFullStepRefusesMore() {
        Step s = new Step(4, 1);
        s.add(new int[4], 0, 4, 0, new int[] {0}, 1, Step.Output.LAST_LOGITS);
        assertThrows(IllegalStateException.class, () -> s.add(new int[1], 0, 1, 0, new int[] {0}, 1, Step.Output.LAST_LOGITS));
        assertThrows(IllegalArgumentException.class, () -> new Step(4, 1).add(new int[1], 0, 0, 0, new int[] {0}, 1, Step.Output.LAST_LOGITS));
        assertThrows(IllegalArgumentException.class, () -> new Step(4, 1).add(new int[1], 0, 1, 0, new int[] {0}, 2, Step.Output.LAST_LOGITS));
    }
}
