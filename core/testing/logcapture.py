"""`capture_logs`: the ``fhirpipes`` logger's lines, as the Lambda writes them, collected in a list.

The conformance kit reads them to prove no record value reaches a log line; the
``fhirpipes_log`` pytest fixture hands them to plugin authors' tests.
"""

from __future__ import annotations

import logging

from fhirpipes.logs import LOGGER_NAME, JsonFormatter


class capture_logs:
    """Collect the ``fhirpipes`` logger's lines (formatted as the Lambda writes them) at DEBUG."""

    def __enter__(self) -> list[str]:
        self.lines: list[str] = []
        self.logger = logging.getLogger(LOGGER_NAME)
        self.level = self.logger.level
        formatter = JsonFormatter()
        lines = self.lines

        class _Handler(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                lines.append(formatter.format(record))

        self.handler = _Handler(logging.DEBUG)
        self.logger.addHandler(self.handler)
        self.logger.setLevel(logging.DEBUG)
        # The checks map thousands of records: keep their lines out of the root logger (and caplog).
        self.propagate = self.logger.propagate
        self.logger.propagate = False
        return self.lines

    def __exit__(self, *exc_info: object) -> None:
        self.logger.removeHandler(self.handler)
        self.logger.setLevel(self.level)
        self.logger.propagate = self.propagate
