CREATE TABLE "connector_usage" (
	"connector" text NOT NULL,
	"period" text NOT NULL,
	"window_start" timestamp with time zone NOT NULL,
	"calls" integer NOT NULL,
	CONSTRAINT "connector_usage_connector_period_pk" PRIMARY KEY("connector","period")
);
--> statement-breakpoint
ALTER TABLE "sensors_records" ADD COLUMN "origin" text;--> statement-breakpoint
ALTER TABLE "traffic_records" ADD COLUMN "origin" text;--> statement-breakpoint
ALTER TABLE "weather_records" ADD COLUMN "origin" text;--> statement-breakpoint
ALTER TABLE "flights_records" ADD COLUMN "origin" text;