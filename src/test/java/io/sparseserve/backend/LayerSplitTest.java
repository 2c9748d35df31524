package io.sparseserve.backend;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sparseserve.model.InvalidInputException;
import org.junit.jupiter.api.Test;

/** {@code --layer-split}: parsing, the check against devices and layers, and the stage of each layer. */
class LayerSplitTest {

    @Test
    void parsesCountsAndGivesEachStageItsRange() {
        LayerSplit s = LayerSplit.parse(" 3, 1,2 ");
        assertArrayEquals(new int[] {3, 1, 2}, s.counts());
        assertEquals("3,1,2", s.toString());
        assertEquals(6, s.layers());
        assertEquals(3, s.stages());
        int[][] ranges = {{0, 3}, {3, 4}, {4, 6}};
        for (int i = 0; i < 3; i++) {
            assertEquals(ranges[i][0], s.start(i));
            assertEquals(ranges[i][1], s.end(i));
        }
        int[] stageOf = {0, 0, 0, 1, 2, 2};
        for (int l = 0; l < 6; l++) assertEquals(stageOf[l], s.stageOf(l));
        assertThrows(IndexOutOfBoundsException.class, () -> s.stageOf(6));
        assertEquals(s, LayerSplit.ofRanges(ranges));
        assertEquals(new LayerSplit(new int[] {3, 3, 2}), LayerSplit.even(8, 3));
        assertEquals(new LayerSplit(new int[] {1, 1}), LayerSplit.even(2, 2));
    }

    @Test
    void badSpecsAreOneLineNamingTheOption() {
        for (String bad : new String[] {"", ",", "3,", ",3", "3,x", "0,6", "-1,7", "3;3", "1.5,2", "9999999,1", "3 3"}) {
            InvalidInputException e = assertThrows(InvalidInputException.class, () -> LayerSplit.parse(bad), bad);
            assertEquals("--layer-split must be layer counts >= 1 separated by commas, one per device of --device (e.g. 16,16), got '"
                    + bad + "'", e.getMessage());
        }
    }

    @Test
    void theSplitMustMatchTheDevicesAndTheModel() {
        LayerSplit s = LayerSplit.parse("3,3");
        assertEquals(s, s.check(Device.parse("cuda:0,0"), 6));
        assertEquals(s, s.check(Device.parse("cuda:1,0"), 6));
        assertEquals("--layer-split 3,3 has 2 layer counts for --device cuda:0 (1 device): give one per device",
                assertThrows(InvalidInputException.class, () -> s.check(Device.parse("cuda:0"), 6)).getMessage());
        assertEquals("--layer-split 3,3 has 2 layer counts for --device cuda:0,1,2 (3 devices): give one per device",
                assertThrows(InvalidInputException.class, () -> s.check(Device.parse("cuda:0,1,2"), 6)).getMessage());
        assertEquals("--layer-split 3,3 covers 6 layers; the model has 2",
                assertThrows(InvalidInputException.class, () -> s.check(Device.parse("cuda:0,1"), 2)).getMessage());
        assertEquals("--layer-split 1,1,1 covers 3 layers; the model has 2 (fewer than the 3 devices)",
                assertThrows(InvalidInputException.class, () -> LayerSplit.parse("1,1,1").check(Device.parse("cuda:0,0,0"), 2))
                        .getMessage());
        assertTrue(assertThrows(InvalidInputException.class, () -> s.check(Device.CPU, 6)).getMessage().contains("(0 devices)"));
    }
}
