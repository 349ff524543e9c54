# _loss.pxi: see fastnn/_core.pyx (included there).
