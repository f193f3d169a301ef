# CPU microseconds per record (utime+stime of the process / records).
load dir."/common.gp"
set title "CPU per record (whole process, steady state)"
set ylabel "CPU microseconds per record"
set logscale y 10
set key top right
plot 100 title "target 100 us" with lines lw 2 lc rgb "black" dt 3, \
     for [i=1:words(files)] word(files, i) using 1:5 \
        title title_of(i) lw 2 pt 7 lc i dt dash_of(i)
