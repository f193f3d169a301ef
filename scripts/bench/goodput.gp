# Goodput runs (goodput.py). Set with -e: data (the data file), out (the
# PNG). Data columns: 1 label, 2 goodput ratio, 3 429s per 1,000 records,
# 4 p99 ms. Top: the ratio with the targets (0.95 of the rpm, 0.9 of
# capacity / latency); bottom: 429s per 1,000 records, target 10.
set terminal pngcairo size 1000,800 noenhanced font ",10"
set output out
set multiplot layout 2,1
set style data histograms
set style fill solid 0.6 border -1
set boxwidth 0.7
set grid ytics
set xtics rotate by -30 scale 0
set key top right box opaque horizontal
set title "Goodput: records/s delivered / the provider's limit (steady state)"
set ylabel "goodput ratio"
set yrange [0:1.45]
plot data using 2:xtic(1) title "goodput" lc rgb "#3070b0", \
     0.95 title "target 0.95 (rpm)" with lines lw 2 lc rgb "black" dt 3, \
     0.9 title "target 0.9 (capacity)" with lines lw 2 lc rgb "gray" dt 2
set title "429s per 1,000 records (steady state)"
set ylabel "429s / 1,000 records"
set yrange [0.1:*]
set logscale y 10
plot data using ($3 > 0.1 ? $3 : 0.1):xtic(1) title "429s" lc rgb "#b03030", \
     10 title "target 10" with lines lw 2 lc rgb "black" dt 3
unset multiplot
