#!/bin/sh
# Bundles the web app's third-party libraries into ES modules under src/parley/web/vendor/.
#
# Dev-only: nothing here runs at install, test or serve time. The output is committed, so a
# user's `pip install` needs no Node. Run it after changing a pin below, then commit the
# changed files and VENDORED.md (which names each file's version, licence and sha256;
# tests/unit/web/test_vendored.py checks the hashes). Needs node, npm and the npm registry.
set -eu

PREACT=11.2.0
HTM=3.1.1
SIGNALS=2.11.4
MARKED=18.2.1
DOMPURIFY=3.5.0
HIGHLIGHT=11.12.0
KATEX=0.19.1
ESBUILD=0.28.2

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT="$ROOT/src/parley/web/vendor"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"

cat > package.json <<JSON
{"name": "parley-vendor", "private": true, "version": "0.0.0"}
JSON
npm install --silent --no-audit --no-fund --ignore-scripts --save-exact \
    "preact@$PREACT" "htm@$HTM" "@preact/signals@$SIGNALS" "marked@$MARKED" \
    "dompurify@$DOMPURIFY" "highlight.js@$HIGHLIGHT" "katex@$KATEX" "esbuild@$ESBUILD"

# One module for Preact, its hooks, htm and signals, so the app and signals share one Preact.
cat > preact.entry.js <<'JS'
import { h } from "preact";
import htm from "htm";
export { h, render, Fragment, createContext, createRef, toChildArray } from "preact";
export { useState, useEffect, useLayoutEffect, useRef, useMemo, useCallback, useContext, useId } from "preact/hooks";
export { signal, computed, effect, batch, untracked, useSignal, useComputed, useSignalEffect } from "@preact/signals";
export const html = htm.bind(h);
JS
# Markdown and the sanitizer always travel together: marked's HTML goes through DOMPurify.
cat > markdown.entry.js <<'JS'
export { marked, Marked, Lexer } from "marked";
export { default as DOMPurify } from "dompurify";
JS
# highlight.js with a handful of languages (loaded only when a message has a code block).
cat > highlight.entry.js <<'JS'
import hljs from "highlight.js/lib/core";
import bash from "highlight.js/lib/languages/bash";
import c from "highlight.js/lib/languages/c";
import cpp from "highlight.js/lib/languages/cpp";
import css from "highlight.js/lib/languages/css";
import diff from "highlight.js/lib/languages/diff";
import go from "highlight.js/lib/languages/go";
import java from "highlight.js/lib/languages/java";
import javascript from "highlight.js/lib/languages/javascript";
import json from "highlight.js/lib/languages/json";
import markdown from "highlight.js/lib/languages/markdown";
import python from "highlight.js/lib/languages/python";
import rust from "highlight.js/lib/languages/rust";
import sql from "highlight.js/lib/languages/sql";
import typescript from "highlight.js/lib/languages/typescript";
import xml from "highlight.js/lib/languages/xml";
import yaml from "highlight.js/lib/languages/yaml";
const languages = { bash, c, cpp, css, diff, go, java, javascript, json, markdown, python, rust, sql, typescript, xml, yaml };
for (const [name, language] of Object.entries(languages)) hljs.registerLanguage(name, language);
export default hljs;
JS
# KaTeX renders to MathML only (the app asks for output: "mathml"): the browser draws it with
# its own math fonts, so there is no stylesheet, no web font and no inline style for the
# pages' CSP to allow.
cat > katex.entry.js <<'JS'
export { default } from "katex";
JS

ESB=./node_modules/.bin/esbuild
rm -rf "$OUT"
mkdir -p "$OUT/licenses"
for name in preact markdown highlight katex; do
    "$ESB" "$name.entry.js" --bundle --format=esm --minify --target=es2022 \
        --legal-comments=none --log-level=warning --outfile="$OUT/$name.js"
done
cp node_modules/highlight.js/styles/github.min.css "$OUT/highlight-light.css"
cp node_modules/highlight.js/styles/github-dark.min.css "$OUT/highlight-dark.css"

for pkg in preact htm @preact/signals @preact/signals-core marked dompurify highlight.js katex; do
    dir="node_modules/$pkg"
    file=$(ls "$dir" | grep -i -m1 -E '^(licen[cs]e|copying)') || { echo "no licence file in $pkg" >&2; exit 1; }
    cp "$dir/$file" "$OUT/licenses/$(echo "$pkg" | sed "s/^@//; s|/|-|").txt"
done

version() { node -p "require('./node_modules/$1/package.json').version"; }
licence() { node -p "require('./node_modules/$1/package.json').license"; }
{
    echo "# Vendored web libraries"
    echo
    echo "Bundled by \`scripts/vendor-web.sh\` (npm + esbuild $ESBUILD, minified ES modules); do not edit."
    echo "\`tests/unit/web/test_vendored.py\` checks every file below against its sha256."
    echo
    echo "| package | version | licence |"
    echo "|---|---|---|"
    for pkg in preact htm @preact/signals @preact/signals-core marked dompurify highlight.js katex; do
        echo "| $pkg | $(version "$pkg") | $(licence "$pkg") |"
    done
    echo
    echo "| file | sha256 |"
    echo "|---|---|"
    (cd "$OUT" && find . -type f ! -name VENDORED.md | sed 's|^\./||' | LC_ALL=C sort | while read -r f; do
        echo "| $f | $(sha256sum "$f" | cut -d' ' -f1) |"
    done)
} > "$OUT/VENDORED.md"
echo "vendor-web: wrote $(find "$OUT" -type f | wc -l) files to src/parley/web/vendor"
