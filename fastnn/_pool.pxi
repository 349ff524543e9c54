# _pool.pxi: see fastnn/_core.pyx (included there).
