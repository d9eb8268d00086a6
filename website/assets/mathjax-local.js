// MathJax 2 settings for the site (loaded as config/local/digsite.js, after the standard config):
// the MathJax copy the build uses (jupyter-server-mathjax) ships only the STIX-Web fonts.
MathJax.Hub.Config({
  "HTML-CSS": { availableFonts: ["STIX-Web"], preferredFont: "STIX-Web", webFont: "STIX-Web", imageFont: null },
  SVG: { font: "STIX-Web" },
});
MathJax.Ajax.loadComplete("[MathJax]/config/local/digsite.js");
