# Throughput against concurrency, with Little's law (concurrency / latency).
load dir."/common.gp"
set title sprintf("Throughput, llmsim at %d ms", latency_ms)
set ylabel "records per second"
set logscale y 10
plot x * 1000.0 / latency_ms title "Little's law (C / latency)" \
        with lines lw 2 lc rgb "black" dt 3, \
     for [i=1:words(files)] word(files, i) using 1:2 \
        title title_of(i) lw 2 pt 7 lc i dt dash_of(i)
