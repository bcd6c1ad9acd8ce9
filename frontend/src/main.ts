import { createApp } from "vue";

import { api } from "@/api";
import App from "@/App.vue";
import { i18n } from "@/i18n";
import { createAppRouter } from "@/router";
import { authStore } from "@/stores/auth";

import "@/styles/main.css";

const router = createAppRouter(authStore);

// The server says the session is gone (expired, signed out elsewhere): back to the login, then here again.
api.onUnauthenticated(() => {
  if (!authStore.user.value) return;
  authStore.forget();
  const here = router.currentRoute.value;
  if (!here.meta.public) void router.replace({ name: "login", query: { next: here.fullPath } });
});

createApp(App).use(i18n).use(router).mount("#app");
