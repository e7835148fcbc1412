"""`melbench bench`: speed and memory measured side by side with s3prl (`bench`), with its
config (`common`), the timed work (`models`, `probe`) and the printed table (`table`)."""
