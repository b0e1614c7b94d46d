// Runs tests/json_patch_cases.json through the UI's JSON Patch (json-patch.js) in Node.js:
//   node json_patch_cases.mjs <cases.json> <json-patch.js>
// prints one JSON array: per case {ok: result, same: bool} or {error: message, patchError:
// bool, same: bool} ("same": the input document was left as it was).
import { readFileSync } from 'node:fs';

const [casesPath, modulePath] = process.argv.slice(2);
const source = readFileSync(modulePath, 'utf8');
// a data: URL, so that the module loads as ES whatever the package type around it
const { applyPatch, PatchError } = await import(
  'data:text/javascript;base64,' + Buffer.from(source).toString('base64')
);
const cases = JSON.parse(readFileSync(casesPath, 'utf8'));
const results = cases.map(({ doc, patch }) => {
  const before = JSON.stringify(doc);
  const same = () => JSON.stringify(doc) === before;
  try {
    return { ok: applyPatch(doc, patch), same: same() };
  } catch (error) {
    return { error: String(error), patchError: error instanceof PatchError, same: same() };
  }
});
process.stdout.write(JSON.stringify(results));
