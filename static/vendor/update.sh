#!/bin/sh
# Vendor the viewer and box-drawing libraries from the npm registry into static/vendor/.
#
# Run by a maintainer when a version changes (needs Node's npm); the files it writes are
# committed, so `make run` needs no Node and nothing is fetched at run time. Each library
# gets its own folder with its licence; VERSIONS records the package, version and the
# registry's integrity hash of the tarball the files came from.
#
# Why these packages: the pages' Content-Security-Policy allows no eval and no inline
# styles. The current @annotorious/openseadragon (3.x) draws with PixiJS, whose WebGL
# shaders need eval, so the SVG-based @recogito/annotorious-openseadragon 2.x is used
# (a plain <script>, global OpenSeadragon.Annotorious), with OpenSeadragon 4.1 (its peer
# range is ^3 || ^4) and the selector pack for circles.
set -eu

OPENSEADRAGON=openseadragon@4.1.1
ANNOTORIOUS=@recogito/annotorious-openseadragon@2.7.19
SELECTOR_PACK=@recogito/annotorious-selector-pack@0.6.1

here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# unpack SPEC: npm pack SPEC into $work, extract it under $work/<folder>/package,
# and append "SPEC integrity" to $work/versions.
unpack() {
    folder=$1
    spec=$2
    (cd "$work" && npm pack --silent --json "$spec" > "$folder.json")
    tarball=$(cd "$work" && node -e 'const p = require(process.argv[1])[0]; console.log(p.filename)' "./$folder.json")
    integrity=$(cd "$work" && node -e 'const p = require(process.argv[1])[0]; console.log(p.integrity)' "./$folder.json")
    mkdir -p "$work/$folder"
    tar xzf "$work/$tarball" -C "$work/$folder"
    echo "$spec $integrity" >> "$work/versions"
}

unpack openseadragon "$OPENSEADRAGON"
unpack annotorious "$ANNOTORIOUS"
unpack selector-pack "$SELECTOR_PACK"

rm -rf "$here/openseadragon" "$here/annotorious" "$here/annotorious-selector-pack"

mkdir -p "$here/openseadragon"
cp "$work/openseadragon/package/build/openseadragon/openseadragon.min.js" "$here/openseadragon/"
cp -r "$work/openseadragon/package/build/openseadragon/images" "$here/openseadragon/images"
cp "$work/openseadragon/package/LICENSE.txt" "$here/openseadragon/LICENSE"

mkdir -p "$here/annotorious"
cp "$work/annotorious/package/dist/openseadragon-annotorious.min.js" \
   "$work/annotorious/package/dist/openseadragon-annotorious.min.js.LICENSE.txt" \
   "$work/annotorious/package/dist/annotorious.min.css" "$here/annotorious/"
cp "$work/annotorious/package/LICENSE" "$here/annotorious/LICENSE"

mkdir -p "$here/annotorious-selector-pack"
cp "$work/selector-pack/package/dist/annotorious-selector-pack.js" \
   "$work/selector-pack/package/dist/annotorious-selector-pack.js.LICENSE.txt" \
   "$here/annotorious-selector-pack/"
cp "$work/selector-pack/package/LICENSE" "$here/annotorious-selector-pack/LICENSE"

# The minified files end with a sourceMappingURL to maps that are not vendored; drop it so
# browsers' developer tools do not ask the server for a file it does not have.
for f in "$here/openseadragon/openseadragon.min.js" \
         "$here/annotorious/openseadragon-annotorious.min.js" \
         "$here/annotorious-selector-pack/annotorious-selector-pack.js"; do
    sed -i '/^\/\/# sourceMappingURL=/d' "$f"
done

{
    echo "# Vendored by static/vendor/update.sh from the npm registry: package@version integrity"
    cat "$work/versions"
} > "$here/VERSIONS"
echo "vendored into $here:"
cat "$here/VERSIONS"
