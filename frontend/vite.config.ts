/// <reference types="vitest/config" />
import { fileURLToPath, URL } from "node:url";

import vue from "@vitejs/plugin-vue";
import AutoImport from "unplugin-auto-import/vite";
import { ElementPlusResolver } from "unplugin-vue-components/resolvers";
import Components from "unplugin-vue-components/vite";
import { defineConfig } from "vite";

const DJANGO = process.env.TESTHUB_URL ?? "http://127.0.0.1:8000";

export default defineConfig(({ command }) => ({
  // Django serves index.html at every non-API path and the built assets under /static/ (WhiteNoise);
  // the dev server serves the app at / and hands the API and admin to Django.
  base: command === "build" ? "/static/" : "/",
  plugins: [
    vue(),
    AutoImport({ resolvers: [ElementPlusResolver()], dts: "src/auto-imports.d.ts" }),
    Components({ resolvers: [ElementPlusResolver()], dts: "src/components.d.ts", dirs: [] }),
  ],
  resolve: {
    alias: { "@": fileURLToPath(new URL("./src", import.meta.url)) },
  },
  define: {
    __VUE_I18N_FULL_INSTALL__: false,
    __VUE_I18N_LEGACY_API__: false,
    __INTLIFY_PROD_DEVTOOLS__: false,
  },
  build: {
    manifest: true, // dist/.vite/manifest.json: what scripts/budget.mjs measures
    outDir: "dist",
    emptyOutDir: true,
    chunkSizeWarningLimit: 600, // ECharts' own chunk (about 190 KB gzipped), loaded by the chart pages only
  },
  server: {
    proxy: { "/api": DJANGO, "/admin": DJANGO },
  },
  test: {
    environment: "jsdom",
    include: ["tests/**/*.spec.ts"],
    server: { deps: { inline: ["element-plus"] } },
    restoreMocks: true,
    unstubGlobals: true,
  },
}));
