# _conv.pxi: see fastnn/_core.pyx (included there).
