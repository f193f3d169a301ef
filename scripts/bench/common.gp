# Shared by the bench plots. Set by bench.py with -e: files (data files,
# space-separated), titles (one word each, '_' for spaces), out (the PNG),
# latency_ms. Data columns: 1 concurrency, 2 throughput, 3 Little's law,
# 4 efficiency, 5 CPU us/record, 6 RSS MiB, 7 p50 ms, 8 p99 ms.
set terminal pngcairo size 900,600 noenhanced font ",11"
set output out
set key top left box opaque
set grid
set logscale x 2
set xlabel "concurrency (pool.workers = pool.max_in_flight)"
set style data linespoints
title_of(i) = system(sprintf("echo '%s' | tr _ ' '", word(titles, i)))
# extractd series solid, the peer dashed; jitter 20 ms in lighter points.
dash_of(i) = strstrt(word(titles, i), "peer") ? 2 : 1
