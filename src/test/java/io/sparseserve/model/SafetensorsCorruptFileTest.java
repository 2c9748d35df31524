package io.sparseserve.model;

import static io.sparseserve.model.SafetensorsTestFiles.assertFormatError;
import static io.sparseserve.model.SafetensorsTestFiles.tinyLlama;
import static io.sparseserve.model.SafetensorsTestFiles.writeRaw;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Each way a safetensors file can be broken gives one precise line naming the file and the tensor or offsets. */
class SafetensorsCorruptFileTest {
    @TempDir
    Path tmp;

    private Path file(String header, int dataBytes) throws IOException {
        return writeRaw(tmp.resolve("bad.safetensors"), header, dataBytes);
    }

    private static void assertRejected(Path file, String... fragments) {
        assertFormatError(file, () -> SafetensorsFile.open(file).close(), fragments);
    }

    @Test
    void fileShorterThan8Bytes() throws IOException {
        Path f = Files.write(tmp.resolve("short.safetensors"), new byte[] {1, 2, 3, 4, 5});
        assertRejected(f, "truncated: 5 bytes, a safetensors file needs at least 8");
        Path empty = Files.write(tmp.resolve("empty.safetensors"), new byte[0]);
        assertRejected(empty, "truncated: 0 bytes, a safetensors file needs at least 8");
    }

    @Test
    void headerLengthBeyondTheFile() throws IOException {
        Path f = writeRaw(tmp.resolve("bad.safetensors"), 1000, "{}".getBytes(), new byte[10]);
        assertRejected(f, "header length 1000", "beyond the end of the file (20 bytes)");
    }

    @Test
    void headerLengthWithTheTopBitSetIsReadUnsigned() throws IOException {
        Path f = writeRaw(tmp.resolve("bad.safetensors"), -1L, "{}".getBytes(), new byte[0]);
        assertRejected(f, "header length 18446744073709551615", "beyond the end of the file");
    }

    @Test
    void headerNotValidJson() throws IOException {
        assertRejected(file("{\"w\": {\"dtype\": ", 0), "header is not valid JSON");
        assertRejected(file("{} trailing", 0), "header is not valid JSON");
    }

    @Test
    void headerNotAJsonObject() throws IOException {
        assertRejected(file("[1, 2]", 0), "header is not a JSON object");
    }

    @Test
    void duplicateTensorName() throws IOException {
        String entry = "{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}";
        assertRejected(file("{\"w\":" + entry + ",\"w\":" + entry + "}", 1), "header is not valid JSON", "'w'");
    }

    @Test
    void unknownDtype() throws IOException {
        assertRejected(file("{\"w\":{\"dtype\":\"F8_E4M3\",\"shape\":[4],\"data_offsets\":[0,4]}}", 4),
                "tensor 'w': unknown dtype 'F8_E4M3'", "F32, F16, BF16");
    }

    @Test
    void dtypeMissing() throws IOException {
        assertRejected(file("{\"w\":{\"shape\":[4],\"data_offsets\":[0,4]}}", 4), "tensor 'w': dtype is missing");
    }

    @Test
    void shapeWithNegativeOrFractionalDimension() throws IOException {
        assertRejected(file("{\"w\":{\"dtype\":\"U8\",\"shape\":[-1,4],\"data_offsets\":[0,4]}}", 4),
                "tensor 'w': shape [-1,4] has a dimension that is not a non-negative integer");
        assertRejected(file("{\"w\":{\"dtype\":\"U8\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4),
                "tensor 'w': shape [1.5]");
        assertRejected(file("{\"w\":{\"dtype\":\"U8\",\"data_offsets\":[0,4]}}", 4),
                "tensor 'w': shape is missing");
    }

    @Test
    void shapeWhoseByteSizeOverflows() throws IOException {
        assertRejected(file("{\"w\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],\"data_offsets\":[0,4]}}", 4),
                "tensor 'w': shape", "too large");
    }

    @Test
    void dataOffsetsMissing() throws IOException {
        assertRejected(file("{\"w\":{\"dtype\":\"F32\",\"shape\":[4]}}", 16),
                "tensor 'w': data_offsets missing", "data section: 16 bytes");
    }

    @Test
    void dataOffsetsNotTwoIntegers() throws IOException {
        assertRejected(file("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0]}}", 16),
                "tensor 'w': data_offsets [0] is not [begin, end]");
        assertRejected(file("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,1e40]}}", 16),
                "tensor 'w': data_offsets", "is not [begin, end]");
    }

    @Test
    void dataOffsetsNegative() throws IOException {
        assertRejected(file("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[-4,12]}}", 16),
                "tensor 'w': data_offsets [-4, 12] are negative", "data section: 16 bytes");
    }

    @Test
    void dataOffsetsEndBeforeBegin() throws IOException {
        assertRejected(file("{\"w\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[8,4]}}", 16),
                "tensor 'w': data_offsets [8, 4] end before they begin", "data section: 16 bytes");
    }

    @Test
    void dataOffsetsBeyondTheDataSection() throws IOException {
        assertRejected(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                        + "\"w\":{\"dtype\":\"F32\",\"shape\":[16],\"data_offsets\":[8,72]}}", 16),
                "truncated: tensor 'w' has data_offsets [8, 72] but the data section is only 16 bytes");
    }

    @Test
    void byteLengthDisagreesWithShapeAndDtype() throws IOException {
        assertRejected(file("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,16]}}", 16),
                "tensor 'w': data_offsets [0, 16] hold 16 bytes but shape [2, 3] of F32 needs 24");
    }

    @Test
    void overlappingTensors() throws IOException {
        assertRejected(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                        + "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[24,40]},"
                        + "\"c\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[12,28]}}", 40),
                "tensors 'a' (data_offsets [0, 16]) and 'c' (data_offsets [12, 28]) overlap");
    }

    @Test
    void truncatedFixtureIsReportedAsTruncated() throws IOException {
        byte[] whole = Files.readAllBytes(tinyLlama());
        Path f = Files.write(tmp.resolve("model.safetensors"), Arrays.copyOf(whole, whole.length - 1000));
        // header 2184 bytes, data section 2442496 bytes of which 1000 are gone; model.norm.weight ends last.
        assertRejected(f, "truncated: tensor 'model.norm.weight' has data_offsets [2442240, 2442496]"
                + " but the data section is only 2441496 bytes");
    }

    @Test
    void metadataValueNotAString() throws IOException {
        assertRejected(file("{\"__metadata__\":{\"format\":1}}", 0), "__metadata__ entry 'format' is not a string");
    }

    @Test
    void tensorEntryNotAnObject() throws IOException {
        assertRejected(file("{\"w\":[1,2]}", 0), "tensor 'w': header entry is not a JSON object");
    }
}
