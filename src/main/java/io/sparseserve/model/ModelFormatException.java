package io.sparseserve.model;

import java.nio.file.Path;

/** A model folder that is corrupt or unsupported: the message names the file and the tensor or field. */
public class ModelFormatException extends InvalidInputException {
    public ModelFormatException(Path file, String detail) {
        super(file + ": " + detail);
    }
}
