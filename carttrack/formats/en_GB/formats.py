# CARTtrack's English look, unchanged: "2 Nov 2026", "2 Nov 2026 14:05", 24-hour times.
DATE_FORMAT = "j M Y"
DATETIME_FORMAT = "j M Y H:i"
TIME_FORMAT = "H:i"
SHORT_DATETIME_FORMAT = "Y-m-d H:i"
