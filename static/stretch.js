// The contrast stretch both image viewers offer (labeling page, search detail): the 2nd..98th
// percentile of luminance mapped onto the full range, so faint orbital images pop.
// Loaded before the page's own script; defines window.stretchContrast.
(() => {
  "use strict";
  window.stretchContrast = function stretchContrast(context, width, height) {
    const image = context.getImageData(0, 0, width, height);
    const pixels = image.data;
    const histogram = new Uint32Array(256);
    for (let i = 0; i < pixels.length; i += 4) histogram[(pixels[i] * 77 + pixels[i + 1] * 150 + pixels[i + 2] * 29) >> 8]++;
    const count = pixels.length / 4;
    let low = 0, high = 255, seen = 0;
    for (let v = 0; v < 256; v++) { seen += histogram[v]; if (seen >= count * 0.02) { low = v; break; } }
    seen = 0;
    for (let v = 255; v >= 0; v--) { seen += histogram[v]; if (seen >= count * 0.02) { high = v; break; } }
    const scale = 255 / Math.max(1, high - low);
    for (let i = 0; i < pixels.length; i += 4) {
      for (let c = 0; c < 3; c++) pixels[i + c] = Math.max(0, Math.min(255, (pixels[i + c] - low) * scale));
    }
    context.putImageData(image, 0, 0);
  };
})();
