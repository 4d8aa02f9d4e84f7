"""Pure builders: typed spec + operator config -> manifest dicts. No I/O, no globals."""
