// The baseline: Bun.serve reading and parsing the same requests and answering 202, with no validation and no Kafka.
Bun.serve({
  port: Number(process.env.PORT),
  async fetch(request) {
    if (request.method === "GET") return new Response("ok");
    const body = await request.json();
    const count = Array.isArray(body) ? body.length : 1;
    return Response.json({ accepted: count, rejected: [], ids: [crypto.randomUUID()] }, { status: 202 });
  },
});
