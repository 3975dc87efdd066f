"""A user's pipeline: its exception's __init__ takes other arguments than its args hold."""


class DataQualityError(Exception):
    def __init__(self, rows, table):
        super().__init__(f"{rows} bad rows")
        self.rows = rows
        self.table = table


def validate(rows, table):
    bad = [row for row in rows if row < 0]
    if bad:
        raise DataQualityError(len(bad), table)  # RAISE-LINE
    return len(rows)


def load_and_check(rows):
    cleaned = [float(row) for row in rows]
    return validate(cleaned, "orders")  # CALL-LINE
