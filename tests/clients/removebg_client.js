// Drives the npm package `remove.bg` (a real third-party remove.bg client, unchanged) against
// Cutout. The package has remove.bg's address built in, so the one thing changed here is that
// address: unirest.post is wrapped to send the package's requests to CUTOUT_BASE instead.
// Usage: node removebg_client.js file|base64 <photo path> <output path>
// Env: CUTOUT_BASE (e.g. http://127.0.0.1:8000), CUTOUT_API_KEY. Prints the result as JSON.
"use strict";
const fs = require("fs");
const unirest = require("unirest");

const base = process.env.CUTOUT_BASE;
const post = unirest.post;
unirest.post = (url, ...rest) => post(url.replace("https://api.remove.bg", base), ...rest);

const removebg = require("remove.bg");

async function main() {
  const [mode, photo, output] = process.argv.slice(2);
  const common = { apiKey: process.env.CUTOUT_API_KEY, size: "preview", type: "person", outputFile: output };
  const result =
    mode === "file"
      ? await removebg.removeBackgroundFromImageFile({ ...common, path: photo })
      : await removebg.removeBackgroundFromImageBase64({
          ...common,
          base64img: fs.readFileSync(photo).toString("base64"),
        });
  const { base64img, ...rest } = result;
  console.log(JSON.stringify({ ...rest, base64Length: base64img.length }));
}

main().catch((errors) => {
  console.log(JSON.stringify({ rejected: errors }));
  process.exitCode = 3;
});
