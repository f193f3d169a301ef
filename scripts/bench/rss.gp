# Peak resident memory (VmHWM) of the process.
load dir."/common.gp"
set title "Peak RSS (VmHWM)"
set ylabel "MiB"
set yrange [0:*]
plot 64 title "target 64 MiB (C=256, 1M backlog)" with lines lw 2 lc rgb "black" dt 3, \
     for [i=1:words(files)] word(files, i) using 1:6 \
        title title_of(i) lw 2 pt 7 dt dash_of(i)
