# _activation.pxi: see fastnn/_core.pyx (included there).
