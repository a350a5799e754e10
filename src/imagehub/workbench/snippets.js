// The API tab's code: the exact request the form would send, as cURL, Python and JavaScript.
// Each reads the key from $IMAGEHUB_API_KEY; pasted into a shell or interpreter, each sends the
// same body the Workbench sends.

const KEY_HEADER = '-H "Authorization: Bearer $IMAGEHUB_API_KEY"';
const LARGE_BODY = 8 * 1024;  // characters of JSON past which cURL reads the body from a heredoc

/** A single-quoted shell word: ' becomes '\'' */
export function shellQuote(text) {
  return `'${text.replace(/'/g, "'\\''")}'`;
}

function jsonText(body) {
  return JSON.stringify(body, null, 2);
}

/** A Python literal for a JSON value (JSON strings are valid Python string literals). */
export function pythonLiteral(value, indent = 0) {
  const pad = " ".repeat(indent + 4);
  const end = " ".repeat(indent);
  if (value === null || value === undefined) return "None";
  if (value === true) return "True";
  if (value === false) return "False";
  if (typeof value === "number" || typeof value === "string") return JSON.stringify(value);
  if (Array.isArray(value)) {
    if (!value.length) return "[]";
    return `[\n${value.map((v) => pad + pythonLiteral(v, indent + 4)).join(",\n")},\n${end}]`;
  }
  const entries = Object.entries(value);
  if (!entries.length) return "{}";
  return `{\n${entries.map(([k, v]) => `${pad}${JSON.stringify(k)}: ${pythonLiteral(v, indent + 4)}`)
    .join(",\n")},\n${end}}`;
}

/**
 * A POST of `body` as curl lines. A short body is one quoted `-d` argument; a large one (an
 * uploaded image) is read from a quoted heredoc, since one argument past 128 KiB fails with
 * "Argument list too long".
 */
function curlPost(url, body) {
  const text = jsonText(body);
  const head = [`curl -sS -X POST ${url} \\`, '  -H "Content-Type: application/json" \\',
    `  ${KEY_HEADER} \\`];
  if (text.length <= LARGE_BODY) return [...head, `  -d ${shellQuote(text)}`];
  return [...head, "  --data-binary @- <<'JSON'", text, "JSON"];  // JSON.stringify writes no bare JSON line
}

export function curlSync(base, body) {
  return curlPost(`${base}/api/ai/images/generate`, body).join("\n");
}

// The last line: the snippet's exit status is 1 when nothing was enqueued (a script can tell),
// and pasted into a shell it closes nothing.
const REFUSED_STATUS = '[ -n "$GEN_IDS" ]  # exit status: 0 enqueued, 1 refused';

function curlEnqueue(base, body) {
  const [first, ...rest] = curlPost(`${base}/api/ai/queue`, body);
  return [
    "# Enqueue; GEN_IDS: the id of every generation (one per Generations).",
    `ANSWER=$(${first}`,
    ...rest,
    ")",
    `GEN_IDS=$(printf '%s' "$ANSWER" | jq -r '[.generations[]?.generation_id] | join(" ")' 2>/dev/null)`,
    "# No id: the server refused the request; show its answer.",
    `[ -n "$GEN_IDS" ] || printf 'Not enqueued: %s\\n' "$ANSWER"`,
  ];
}

export function curlAsyncPoll(base, body) {
  return [
    ...curlEnqueue(base, body),
    "# Poll each generation until it is no longer queued or processing; print its row.",
    "for GEN_ID in $GEN_IDS; do",
    "  while true; do",
    `    ROW=$(curl -sS ${KEY_HEADER} \\`,
    `      "${base}/api/ai/queue/$GEN_ID")`,
    `    STATUS=$(printf '%s' "$ROW" | jq -r '.status' 2>/dev/null)`,
    '    echo "Status: $STATUS"',
    "    case $STATUS in queued|processing) sleep 1;; *) break;; esac",
    "  done",
    `  printf '%s\\n' "$ROW" | jq .`,
    "done",
    REFUSED_STATUS,
  ].join("\n");
}

export function curlAsyncSse(base, body) {
  return [
    ...curlEnqueue(base, body),
    "# Stream the events; print the data line of the media_generation_completed (or _cancelled)",
    "# event of each of our generations, and stop once every one has ended.",
    'if [ -n "$GEN_IDS" ]; then',
    `curl -sN ${KEY_HEADER} ${base}/api/events \\`,
    `| awk -v ids="$GEN_IDS" '`,
    'BEGIN { left = split(ids, list, " "); for (i = 1; i <= left; i++) want[list[i]] = 1 }',
    "/^event: media_generation_(completed|cancelled)$/ { expect = 1; next }",
    "/^data: / && expect {",
    "  expect = 0",
    "  payload = substr($0, 7)",
    '  for (id in want) if (index(payload, "\\"generation_id\\":\\"" id "\\"")) {',
    "    print payload; fflush(); delete want[id]; left--; break",
    "  }",
    "  if (left == 0) exit",
    "}",
    "' | jq .",
    "fi",
    REFUSED_STATUS,
  ].join("\n");
}

export function python(base, body, mode) {
  const head = [
    "import json",
    "import os",
    ...(mode === "queue" ? ["import time"] : []),
    "",
    "import requests",
    "",
    `BASE_URL = ${JSON.stringify(base)}`,
    'HEADERS = {"Authorization": f"Bearer {os.environ[\'IMAGEHUB_API_KEY\']}"}',
    "",
  ];
  if (mode !== "queue") {
    return [
      ...head,
      "response = requests.post(",
      '    f"{BASE_URL}/api/ai/images/generate",',
      "    headers=HEADERS,",
      `    json=${pythonLiteral(body, 4)},`,
      "    timeout=600,",
      ")",
      "if not response.ok:  # the server refused: its answer says why",
      '    raise SystemExit(f"Not generated: {response.status_code} {response.text}")',
      "print(json.dumps(response.json(), indent=2))",
    ].join("\n");
  }
  return [
    ...head,
    "response = requests.post(",
    '    f"{BASE_URL}/api/ai/queue",',
    "    headers=HEADERS,",
    `    json=${pythonLiteral(body, 4)},`,
    "    timeout=60,",
    ")",
    "if not response.ok:  # the server refused: its answer says why",
    '    raise SystemExit(f"Not enqueued: {response.status_code} {response.text}")',
    'for generation in response.json()["generations"]:',
    "    while True:",
    "        row = requests.get(",
    '            f"{BASE_URL}/api/ai/queue/{generation[\'generation_id\']}", headers=HEADERS, timeout=60',
    "        ).json()",
    '        if row["status"] in ("succeeded", "failed", "cancelled"):',
    "            break",
    "        time.sleep(1)",
    "    print(json.dumps(row, indent=2))",
  ].join("\n");
}

export function javascript(base, body, mode) {
  const request = (path, payload) => [
    `const response = await fetch("${base}${path}", {`,
    '  method: "POST",',
    "  headers: {",
    '    "Content-Type": "application/json",',
    "    Authorization: `Bearer ${process.env.IMAGEHUB_API_KEY}`,",
    "  },",
    `  body: JSON.stringify(${jsonText(payload).replace(/\n/g, "\n  ")}),`,
    "});",
    "if (!response.ok) throw new Error(await response.text());",
  ];
  if (mode !== "queue") {
    return [...request("/api/ai/images/generate", body), "console.log(await response.json());"].join("\n");
  }
  return [
    ...request("/api/ai/queue", body),
    "for (const { generation_id } of (await response.json()).generations) {",
    "  for (;;) {",
    `    const row = await (await fetch(\`${base}/api/ai/queue/\${generation_id}\`, {`,
    "      headers: { Authorization: `Bearer ${process.env.IMAGEHUB_API_KEY}` },",
    "    })).json();",
    '    if (["succeeded", "failed", "cancelled"].includes(row.status)) {',
    "      console.log(row);",
    "      break;",
    "    }",
    "    await new Promise((resolve) => setTimeout(resolve, 1000));",
    "  }",
    "}",
  ].join("\n");
}
