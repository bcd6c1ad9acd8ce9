/** ECharts with only what TestHub's charts draw; imported by the chart components alone, so it stays in
 * their chunk and out of the first page. */
import { LineChart, PieChart, ScatterChart } from "echarts/charts";
import { GridComponent, LegendComponent, TooltipComponent } from "echarts/components";
import { use } from "echarts/core";
import { CanvasRenderer } from "echarts/renderers";

use([PieChart, LineChart, ScatterChart, GridComponent, LegendComponent, TooltipComponent, CanvasRenderer]);

export { default as VChart } from "vue-echarts";

/** The same colours as the progress bars and status badges (styles/main.css). */
export const RESULT_COLORS = {
  passed: "#256d2a",
  failed: "#c62828",
  error: "#8a5300",
  cancelled: "#5b6169",
  full: "#1a5fb4",
  rerun: "#8a5300",
} as const;
