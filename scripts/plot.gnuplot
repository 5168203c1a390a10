# plot.gnuplot: called by scripts/bench-compare.sh.
#   gnuplot -e "in='FILE'; out='PNG'; ttl='TITLE'; kind='lat'|'cpu'; ncol=N" scripts/plot.gnuplot
# FILE: whitespace columns, first row a header (label, then one column per series).
#   lat: rows are percentiles (p50 p90 p99 p99.9 max), columns servers, values in µs (log y).
#   cpu: rows are workloads, columns servers, values in server CPU µs per delivery (bars).
set terminal pngcairo size 900,540 noenhanced font ",11"
set output out
set title ttl
set key outside right top
set grid ytics
# ncol (number of columns) and dashes (one dash type per series, e.g. "1 1 2 2") are passed with -e
if (!exists("dashes")) dashes = ""
dt_of(i) = (words(dashes) >= i-1) ? int(word(dashes, i-1)) : 1
colors = "#9400d3 #009e73 #56b4e9 #e69f00 #000000 #d55e00 #0072b2 #cc79a7 #808080 #f0e442"
if (kind eq 'lat') {
    set logscale y
    set ylabel "latency (µs, log scale)"
    set xlabel "percentile"
    plot for [i=2:ncol] in using i:xtic(1) with linespoints lw 2 pt 7 dt dt_of(i) lc rgb word(colors, 1 + (i-2) % 10) title columnheader(i)
} else {
    set ylabel "server CPU µs per delivery"
    set style data histograms
    set style histogram clustered gap 1
    set style fill solid 0.8 border -1
    set boxwidth 0.9
    set yrange [0:*]
    plot for [i=2:ncol] in using i:xtic(1) lc rgb word(colors, 1 + (i-2) % 10) title columnheader(i)
}
