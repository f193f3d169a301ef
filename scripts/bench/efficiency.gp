# Efficiency = throughput / Little's law, with the 0.95 target.
load dir."/common.gp"
set title sprintf("Efficiency (throughput / Little's law), llmsim at %d ms", latency_ms)
set ylabel "efficiency"
set yrange [0:1.1]
plot 0.95 title "target 0.95" with lines lw 2 lc rgb "black" dt 3, \
     for [i=1:words(files)] word(files, i) using 1:4 \
        title title_of(i) lw 2 pt 7 lc i dt dash_of(i)
