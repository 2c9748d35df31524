package io.sparseserve.model;

/**
 * Bad usage or bad input from the user (a file, an option, a request). The command line turns it into one line on
 * stderr and exit code 2; the server turns it into INVALID_ARGUMENT. Never an internal error.
 */
public class InvalidInputException extends RuntimeException {
    public InvalidInputException(String message) {
        super(message);
    }

    public InvalidInputException(String message, Throwable cause) {
        super(message, cause);
    }
}
