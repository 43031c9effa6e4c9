// deploy/kubernetes/: the examples cannot be applied here (no cluster), so
// deploy/kubernetes/check-examples.py checks them offline: YAML, the filter's configuration equal
// to the singleton's, the singleton's vm_id, the named clusters, bcl-check-config, and
// `envoy --mode validate` of the clusters and the singleton. Needs PyYAML: skipped without it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';

import { REPO, WASM_PATH, envoyBinary } from './lib/stack.mjs';

// scripts/setup.sh installs PyYAML into .venv; any python3 with PyYAML will do.
const venvPython = join(REPO, '.venv/bin/python');
const python = spawnSync(venvPython, ['-c', 'import yaml'], { encoding: 'utf8' }).status === 0 ? venvPython : 'python3';
const yaml = spawnSync(python, ['-c', 'import yaml'], { encoding: 'utf8' });
const skip = yaml.status === 0 ? false : 'no PyYAML (scripts/setup.sh installs it into .venv)';

test('the Kubernetes examples pass deploy/kubernetes/check-examples.py', { skip, timeout: 600_000 }, () => {
  // bcl-check-config through `cargo run` (rebuilt only when the sources changed)
  const env = { ...process.env, ENVOY_BIN: envoyBinary(), BCL_WASM: WASM_PATH };
  delete env.BCL_CHECK_CONFIG;
  const out = spawnSync(python, [join(REPO, 'deploy/kubernetes/check-examples.py')], { cwd: REPO, env, encoding: 'utf8' });
  const output = `${out.stdout}${out.stderr}`;
  assert.equal(out.status, 0, output);
  assert.match(output, /all checks passed/);
  assert.doesNotMatch(output, /^skipped/m, 'the Envoy validation ran');
});
