// Writes a new private JWKS (one RS256 key) for the demo IdP, and the matching public JWKS
// beside it (*.public.json, for the filter's inline `jwks` option):
//   node idp/generate-jwks.mjs [path/to/jwks.json]
// Without --new, only (re)writes the public file from the existing private one.
// The committed dev-keys/jwks.json is a development key, public in this repository: never use
// it for anything but the local demo and tests.
import { createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const argv = process.argv.slice(2);
const fresh = argv.includes('--new');
const target = resolve(argv.find((a) => !a.startsWith('--'))
  ?? resolve(dirname(fileURLToPath(import.meta.url)), 'dev-keys/jwks.json'));

let jwks;
if (fresh || !existsSync(target)) {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  jwks = { keys: [{ ...jwk, kid: `demo-${randomBytes(4).toString('hex')}`, alg: 'RS256', use: 'sig' }] };
  writeFileSync(target, `${JSON.stringify(jwks, null, 2)}\n`, { mode: 0o644 });
  process.stdout.write(`wrote ${target} (kid ${jwks.keys[0].kid})\n`);
} else {
  jwks = JSON.parse(readFileSync(target, 'utf8'));
}

const publicKeys = jwks.keys.map(({ kid, alg, use, ...key }) => {
  const pub = createPublicKey({ key: { ...key }, format: 'jwk' }).export({ format: 'jwk' });
  return { ...pub, kid, alg, use };
});
const publicTarget = target.replace(/\.json$/, '.public.json');
writeFileSync(publicTarget, `${JSON.stringify({ keys: publicKeys }, null, 2)}\n`, { mode: 0o644 });
process.stdout.write(`wrote ${publicTarget}\n`);
