CREATE TABLE "sensors_records" (
	"id" text PRIMARY KEY NOT NULL,
	"source_id" text NOT NULL,
	"ts" timestamp with time zone NOT NULL,
	"received_at" timestamp with time zone NOT NULL,
	"via" text NOT NULL,
	"data" jsonb NOT NULL,
	"flags" text[] DEFAULT '{}' NOT NULL
);
--> statement-breakpoint
CREATE TABLE "sensors_rollups" (
	"source_id" text NOT NULL,
	"width" text NOT NULL,
	"bucket_start" timestamp with time zone NOT NULL,
	"quality" text NOT NULL,
	"count" integer NOT NULL,
	"temperature_count" integer DEFAULT 0 NOT NULL,
	"temperature_sum" double precision,
	"temperature_min" double precision,
	"temperature_max" double precision,
	"humidity_count" integer DEFAULT 0 NOT NULL,
	"humidity_sum" double precision,
	"humidity_min" double precision,
	"humidity_max" double precision,
	"pm25_count" integer DEFAULT 0 NOT NULL,
	"pm25_sum" double precision,
	"pm25_min" double precision,
	"pm25_max" double precision,
	"pm10_count" integer DEFAULT 0 NOT NULL,
	"pm10_sum" double precision,
	"pm10_min" double precision,
	"pm10_max" double precision,
	"no2_count" integer DEFAULT 0 NOT NULL,
	"no2_sum" double precision,
	"no2_min" double precision,
	"no2_max" double precision,
	"co2_count" integer DEFAULT 0 NOT NULL,
	"co2_sum" double precision,
	"co2_min" double precision,
	"co2_max" double precision,
	"battery_count" integer DEFAULT 0 NOT NULL,
	"battery_sum" double precision,
	"battery_min" double precision,
	"battery_max" double precision,
	CONSTRAINT "sensors_rollups_source_id_width_bucket_start_quality_pk" PRIMARY KEY("source_id","width","bucket_start","quality")
);
--> statement-breakpoint
CREATE TABLE "traffic_records" (
	"id" text PRIMARY KEY NOT NULL,
	"source_id" text NOT NULL,
	"ts" timestamp with time zone NOT NULL,
	"received_at" timestamp with time zone NOT NULL,
	"via" text NOT NULL,
	"data" jsonb NOT NULL,
	"flags" text[] DEFAULT '{}' NOT NULL
);
--> statement-breakpoint
CREATE TABLE "traffic_rollups" (
	"source_id" text NOT NULL,
	"width" text NOT NULL,
	"bucket_start" timestamp with time zone NOT NULL,
	"quality" text NOT NULL,
	"count" integer NOT NULL,
	"visitors_in_count" integer DEFAULT 0 NOT NULL,
	"visitors_in_sum" double precision,
	"visitors_in_min" double precision,
	"visitors_in_max" double precision,
	"visitors_out_count" integer DEFAULT 0 NOT NULL,
	"visitors_out_sum" double precision,
	"visitors_out_min" double precision,
	"visitors_out_max" double precision,
	"transactions_count" integer DEFAULT 0 NOT NULL,
	"transactions_sum" double precision,
	"transactions_min" double precision,
	"transactions_max" double precision,
	"revenue_count" integer DEFAULT 0 NOT NULL,
	"revenue_sum" double precision,
	"revenue_min" double precision,
	"revenue_max" double precision,
	CONSTRAINT "traffic_rollups_source_id_width_bucket_start_quality_pk" PRIMARY KEY("source_id","width","bucket_start","quality")
);
--> statement-breakpoint
CREATE TABLE "weather_records" (
	"id" text PRIMARY KEY NOT NULL,
	"source_id" text NOT NULL,
	"ts" timestamp with time zone NOT NULL,
	"received_at" timestamp with time zone NOT NULL,
	"via" text NOT NULL,
	"data" jsonb NOT NULL,
	"flags" text[] DEFAULT '{}' NOT NULL
);
--> statement-breakpoint
CREATE TABLE "weather_rollups" (
	"source_id" text NOT NULL,
	"width" text NOT NULL,
	"bucket_start" timestamp with time zone NOT NULL,
	"quality" text NOT NULL,
	"count" integer NOT NULL,
	"temperature_count" integer DEFAULT 0 NOT NULL,
	"temperature_sum" double precision,
	"temperature_min" double precision,
	"temperature_max" double precision,
	"feels_like_count" integer DEFAULT 0 NOT NULL,
	"feels_like_sum" double precision,
	"feels_like_min" double precision,
	"feels_like_max" double precision,
	"humidity_count" integer DEFAULT 0 NOT NULL,
	"humidity_sum" double precision,
	"humidity_min" double precision,
	"humidity_max" double precision,
	"pressure_count" integer DEFAULT 0 NOT NULL,
	"pressure_sum" double precision,
	"pressure_min" double precision,
	"pressure_max" double precision,
	"wind_speed_count" integer DEFAULT 0 NOT NULL,
	"wind_speed_sum" double precision,
	"wind_speed_min" double precision,
	"wind_speed_max" double precision,
	"clouds_count" integer DEFAULT 0 NOT NULL,
	"clouds_sum" double precision,
	"clouds_min" double precision,
	"clouds_max" double precision,
	"precipitation_count" integer DEFAULT 0 NOT NULL,
	"precipitation_sum" double precision,
	"precipitation_min" double precision,
	"precipitation_max" double precision,
	CONSTRAINT "weather_rollups_source_id_width_bucket_start_quality_pk" PRIMARY KEY("source_id","width","bucket_start","quality")
);
--> statement-breakpoint
CREATE INDEX "sensors_records_source_ts" ON "sensors_records" USING btree ("source_id","ts" DESC NULLS LAST,"id" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "sensors_records_ts" ON "sensors_records" USING btree ("ts" DESC NULLS LAST,"id" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "sensors_rollups_width_bucket" ON "sensors_rollups" USING btree ("width","bucket_start");--> statement-breakpoint
CREATE INDEX "traffic_records_source_ts" ON "traffic_records" USING btree ("source_id","ts" DESC NULLS LAST,"id" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "traffic_records_ts" ON "traffic_records" USING btree ("ts" DESC NULLS LAST,"id" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "traffic_rollups_width_bucket" ON "traffic_rollups" USING btree ("width","bucket_start");--> statement-breakpoint
CREATE INDEX "weather_records_source_ts" ON "weather_records" USING btree ("source_id","ts" DESC NULLS LAST,"id" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "weather_records_ts" ON "weather_records" USING btree ("ts" DESC NULLS LAST,"id" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "weather_rollups_width_bucket" ON "weather_rollups" USING btree ("width","bucket_start");