"""The tiny corpus the RAG tests index: five Python topics, one document each."""

TOPICS = {
    "try": "The try statement specifies exception handlers. An except clause catches "
           "exceptions raised in the try clause. A finally clause always runs.",
    "for": "The for statement iterates over the elements of a sequence. The loop body runs "
           "once per item. A break statement ends the loop early.",
    "with": "The with statement wraps a block with the methods of a context manager. "
            "Files are closed automatically when the block ends.",
    "lambda": "Lambda expressions create anonymous functions. A lambda holds one expression.",
    "dict": "A dictionary maps hashable keys to values. Dictionary comprehensions build "
            "dictionaries from iterables.",
}
