import type { RouteConfig, RouteHandler } from "@hono/zod-openapi";

/** A handler typed by its route: its parameters as validated, its answers as the route lists them. */
export type AppRouteHandler<R extends RouteConfig> = RouteHandler<R>;
