// Draw every plotly figure of the page from the JSON the build saved beside its placeholder
// (website/build.py: plotly_html). plotly.js is the site's own copy: nothing comes from a CDN.
(function () {
  function draw() {
    document.querySelectorAll("script[data-plotly-for]").forEach(function (script) {
      var div = document.getElementById(script.dataset.plotlyFor);
      if (!div || div.dataset.drawn) return;
      var figure = JSON.parse(script.textContent);
      div.dataset.drawn = "1";
      window.Plotly.newPlot(div, figure.data || [], figure.layout || {},
        Object.assign({ responsive: true, displaylogo: false }, figure.config || {}));
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
