// Charts for the figures that carry data-chart (JSON rendered by the server). Without
// JavaScript the same figures are in the tables beside them.
"use strict";

// Dollars to a number of significant digits, in decimals as the tables write them: "$0.0000005",
// never JavaScript's "$5e-7" (amounts under a millionth of a dollar are common per request).
function dollars(v, digits) {
  return "$" + Number(v.toPrecision(digits)).toFixed(12).replace(/\.?0+$/, "");
}

function chartOptions(kind, width) {
  const usd = { label: "Spend (USD)", stroke: "#0b57d0", fill: "rgba(11,87,208,0.12)", width: 2,
                value: (u, v) => v == null ? "" : dollars(v, 6), scale: "usd" };
  const requests = { label: "Requests", stroke: "#8250df", width: 1.5, scale: "n" };
  const series = [{}, usd, requests];
  if (kind === "overview") {
    series.push({ label: "Errors", stroke: "#b3261e", width: 1.5, scale: "n" });
  }
  return {
    width: width,
    height: 260,
    series: series,
    scales: { x: { time: true }, usd: {}, n: {} },
    // The buckets are UTC days and hours, and the pages say so: uPlot would draw its axis and
    // legend in the browser's time zone, moving an 11:00 UTC hour or today's UTC day elsewhere.
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),
    axes: [
      {},
      { scale: "usd", size: 90, values: (u, vals) => vals.map((v) => dollars(v, 2)) },
      { scale: "n", side: 1, grid: { show: false } },
    ],
  };
}

function draw(figure) {
  if (typeof uPlot === "undefined") {
    return;
  }
  const data = JSON.parse(figure.dataset.chart);
  const kind = figure.dataset.kind;
  const columns = [data.x, data.usd, data.requests];
  if (kind === "overview") {
    columns.push(data.errors);
  }
  const width = Math.max(320, figure.clientWidth || 800);
  const plot = new uPlot(chartOptions(kind, width), columns, figure);
  window.addEventListener("resize", () => {
    plot.setSize({ width: Math.max(320, figure.clientWidth || 800), height: 260 });
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("figure[data-chart]").forEach(draw);
});
