// Drives POST <baseURL>/responses with the AI SDK's documented OpenAI provider:
// createOpenAI({ baseURL })(model) is the Responses API model since AI SDK 5.
//
//   node run.mjs stream <baseURL>   streamText with a text part and two images (a URL and
//                                   inline bytes); prints {text, reasoning, finishReason, usage}
//   node run.mjs object <baseURL>   generateObject with a zod schema; prints {object, finishReason}
//
// Any error (a chunk the SDK's schema rejects, an API error) exits 1 with it on stderr.
import { createOpenAI } from "@ai-sdk/openai";
import { generateObject, streamText } from "ai";
import { z } from "zod";

const [mode, baseURL] = process.argv.slice(2);
const openai = createOpenAI({ baseURL, apiKey: "unused" });
const model = openai("m1");
const PNG = Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3, 4]);

async function stream() {
  const errors = [];
  const result = streamText({
    model,
    messages: [
      {
        role: "user",
        content: [
          { type: "text", text: "what is in these?" },
          { type: "image", image: new URL("https://images.example/cat.jpg") },
          { type: "image", image: PNG, mediaType: "image/png" },
        ],
      },
    ],
    providerOptions: { openai: { store: false } },
    onError: ({ error }) => errors.push(String(error?.stack ?? error)),
  });
  let text = "";
  let reasoning = "";
  for await (const part of result.fullStream) {
    if (part.type === "text-delta") text += part.text;
    if (part.type === "reasoning-delta") reasoning += part.text;
    if (part.type === "error") errors.push(String(part.error?.stack ?? JSON.stringify(part.error)));
  }
  if (errors.length) throw new Error(errors.join("\n"));
  return { text, reasoning, finishReason: await result.finishReason, usage: await result.usage };
}

async function object() {
  const result = await generateObject({
    model,
    schema: z.object({ city: z.string(), days: z.number() }),
    schemaName: "Trip",
    prompt: "plan a trip",
    providerOptions: { openai: { store: false } },
  });
  return { object: result.object, finishReason: result.finishReason };
}

try {
  const out = mode === "stream" ? await stream() : await object();
  process.stdout.write(JSON.stringify(out));
} catch (error) {
  process.stderr.write(String(error?.stack ?? error) + "\n" + JSON.stringify(error, null, 1));
  process.exit(1);
}
