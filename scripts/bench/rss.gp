# Peak resident memory (VmHWM) of the process; the million-record backlog
# point (extractd at C=256) as a separate marker.
load dir."/common.gp"
set title "Peak RSS (VmHWM)"
set ylabel "MiB"
set yrange [0:*]
plot 64 title "target 64 MiB (C=256, 1M backlog)" with lines lw 2 lc rgb "black" dt 3, \
     backlog using 1:2 title "extractd, 1M-record backlog, C=256" \
        with points pt 9 ps 2 lc rgb "red", \
     for [i=1:words(files)] word(files, i) using 1:6 \
        title title_of(i) lw 2 pt 7 lc i dt dash_of(i)
