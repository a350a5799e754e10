// The API tab's code: the exact request the form would send, as cURL, Python and JavaScript.
// Each reads the key from $IMAGEHUB_API_KEY; pasted into a shell or interpreter, each sends the
// same body the Workbench sends.

const KEY_HEADER = '-H "Authorization: Bearer $IMAGEHUB_API_KEY"';

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

export function curlSync(base, body) {
  return [
    `curl -X POST ${base}/api/ai/images/generate \\`,
    '  -H "Content-Type: application/json" \\',
    `  ${KEY_HEADER} \\`,
    `  -d ${shellQuote(jsonText(body))}`,
  ].join("\n");
}

function curlEnqueue(base, body) {
  return [
    "# Enqueue, capture the generation id.",
    `GEN_ID=$(curl -s -X POST ${base}/api/ai/queue \\`,
    '  -H "Content-Type: application/json" \\',
    `  ${KEY_HEADER} \\`,
    `  -d ${shellQuote(jsonText(body))} | jq -r '.generations[0].generation_id')`,
  ];
}

export function curlAsyncPoll(base, body) {
  return [
    ...curlEnqueue(base, body),
    "# Poll until the generation reaches a terminal status.",
    "while true; do",
    `  STATUS=$(curl -s ${KEY_HEADER} \\`,
    `    "${base}/api/ai/queue/$GEN_ID" | jq -r '.status')`,
    '  echo "Status: $STATUS"',
    "  case $STATUS in succeeded|failed|cancelled) break;; esac",
    "  sleep 1",
    "done",
    "# Print the result.",
    `curl -s ${KEY_HEADER} \\`,
    `  "${base}/api/ai/queue/$GEN_ID" | jq .`,
  ].join("\n");
}

export function curlAsyncSse(base, body) {
  return [
    ...curlEnqueue(base, body),
    "# Stream the SSE channel, grab the data line that follows a",
    "# media_generation_completed event for our id, and pretty-print it.",
    `curl -sN ${KEY_HEADER} ${base}/api/events \\`,
    `| awk -v id="$GEN_ID" '`,
    "/^event: media_generation_completed$/ { expect=1; next }",
    "/^data: / && expect {",
    "  payload = substr($0, 7)",
    '  if (index(payload, "\\"generation_id\\":\\"" id "\\"")) { print payload; exit }',
    "  expect = 0",
    "}",
    "' | jq .",
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
      "response.raise_for_status()",
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
    "response.raise_for_status()",
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
