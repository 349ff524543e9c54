# _optim.pxi: see fastnn/_core.pyx (included there).
