// /journeys: the channel-transition Sankey and the stage funnel, fed by Query.analytics.
(function () {
  "use strict";

  var CHANNEL_COLOURS = {
    WEB: "#2563eb", MOBILE: "#7c3aed", ASSISTED: "#ea580c",
    SOCIAL: "#db2777", PHYSICAL: "#16a34a", OUTBOUND: "#0891b2",
  };
  var STAGE_COLOURS = {
    AWARENESS: "#38bdf8", CONSIDERATION: "#6366f1", PURCHASE: "#16a34a",
    POST_PURCHASE: "#f59e0b", RETENTION: "#e11d48",
  };
  var CLASS_COLOURS = { FORWARD: "#16a34a", BACKWARD: "#dc2626", LOOPING: "#f59e0b" };
  var END_COLOUR = "#cbd5e1";
  var STAY_COLOUR = "#475569";
  var END_KEY = "__end";

  var QUERY =
    "query Journeys($filter: AnalyticsFilter, $groupBy: TransitionGrouping!, $gap: Int) {\n" +
    "  segments { key name }\n" +
    "  analytics {\n" +
    "    businessLines\n" +
    "    channelMix(filter: $filter) { interactions customers }\n" +
    "    channelTransitions(groupBy: $groupBy, maxGapMinutes: $gap, filter: $filter) {\n" +
    "      moves dropOffs\n" +
    "      nodes { key label interactions dropOffs dropOffCustomers dropOffRate }\n" +
    "      links { source target moves customers share classification }\n" +
    "    }\n" +
    "    stageFunnel(filter: $filter) {\n" +
    "      stage { code name } customers convertedToNext conversionToNext\n" +
    "      medianSecondsInStage completedStays\n" +
    "    }\n" +
    "  }\n" +
    "}";

  var fmt = d3.format(",");
  var pct = d3.format(".0%");
  var $ = function (id) { return document.getElementById(id); };
  var tooltip = $("tooltip");

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    if (seconds < 3600) return Math.round(seconds / 60) + " min";
    if (seconds < 86400 * 2) return (seconds / 3600).toFixed(1) + " h";
    return (seconds / 86400).toFixed(1) + " days";
  }

  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  function showTip(event, html) {
    tooltip.innerHTML = html;
    tooltip.hidden = false;
    var x = event.clientX + 14, y = event.clientY + 14;
    var box = tooltip.getBoundingClientRect();
    if (x + box.width > window.innerWidth - 8) x = event.clientX - box.width - 14;
    if (y + box.height > window.innerHeight - 8) y = event.clientY - box.height - 14;
    tooltip.style.left = x + "px";
    tooltip.style.top = y + "px";
  }
  function hideTip() { tooltip.hidden = true; }

  // --- the request -----------------------------------------------------------------------------

  function isoDay(value, addDays) {
    var date = new Date(value + "T00:00:00Z");
    date.setUTCDate(date.getUTCDate() + (addDays || 0));
    return date.toISOString();
  }

  function currentFilter() {
    var filter = {};
    var period = $("period").value;
    if (period === "custom") {
      if ($("since").value) filter.since = isoDay($("since").value);
      if ($("until").value) filter.until = isoDay($("until").value, 1);
    } else if (period !== "all") {
      filter.since = new Date(Date.now() - Number(period) * 86400000).toISOString();
    }
    if ($("line").value) filter.businessLines = [$("line").value];
    if ($("segment").value) filter.segments = [$("segment").value];
    return filter;
  }

  var requestSeq = 0;
  function load() {
    var seq = ++requestSeq;
    var gap = $("gap").value;
    var body = {
      query: QUERY,
      variables: {
        filter: currentFilter(),
        groupBy: $("group").value,
        gap: gap ? Number(gap) : null,
      },
    };
    document.body.setAttribute("aria-busy", "true");
    fetch("/graphql", {
      method: "POST",
      headers: Object.assign({ "Content-Type": "application/json" }, window.HubKey.headers()),
      body: JSON.stringify(body),
    })
      .then(function (response) { return response.json(); })
      .then(function (result) {
        if (seq !== requestSeq) return;
        if (result.errors && result.errors.length) throw new Error(result.errors[0].message);
        $("error").hidden = true;
        fillSegments(result.data.segments);
        render(result.data.analytics, body.variables.groupBy);
      })
      .catch(function (error) {
        if (seq !== requestSeq) return;
        $("error").textContent = "Could not load the analytics: " + error.message;
        $("error").hidden = false;
      })
      .finally(function () { document.body.removeAttribute("aria-busy"); });
  }

  function fillBusinessLines(lines) {
    var select = $("line");
    var chosen = select.value;
    var known = Array.prototype.map.call(select.options, function (o) { return o.value; });
    lines.forEach(function (line) {
      if (known.indexOf(line) < 0) select.add(new Option(line.charAt(0).toUpperCase() + line.slice(1), line));
    });
    select.value = chosen;
  }

  function fillSegments(segments) {
    var select = $("segment");
    var chosen = select.value;
    var known = Array.prototype.map.call(select.options, function (o) { return o.value; });
    segments.forEach(function (segment) {
      if (known.indexOf(segment.key) < 0) select.add(new Option(segment.name, segment.key));
    });
    select.value = chosen;
  }

  function render(analytics, groupBy) {
    fillBusinessLines(analytics.businessLines);
    var graph = analytics.channelTransitions;
    var funnel = analytics.stageFunnel;
    $("kpi-customers").textContent = fmt(analytics.channelMix.customers);
    $("kpi-interactions").textContent = fmt(analytics.channelMix.interactions);
    $("kpi-moves").textContent = fmt(graph.moves);
    $("kpi-ends").textContent = fmt(graph.dropOffs);
    var top = funnel[0] ? funnel[0].customers : 0;
    var purchase = funnel.filter(function (s) { return s.stage.code === "PURCHASE"; })[0];
    $("kpi-purchase").textContent = purchase
      ? fmt(purchase.customers) + (top ? " · " + pct(purchase.customers / top) : "")
      : "–";
    $("sankey-title").textContent = groupBy === "STAGE" ? "Stage transitions" : "Channel transitions";
    drawSankey(graph, groupBy);
    drawLegend(graph, groupBy);
    drawFunnel(funnel);
    fillLinksTable(graph, groupBy);
    fillFunnelTable(funnel);
  }

  // --- Sankey: each node on the left (from) and again on the right (next) ----------------------

  function nodeColour(key, groupBy) {
    if (key === END_KEY) return END_COLOUR;
    return (groupBy === "STAGE" ? STAGE_COLOURS : CHANNEL_COLOURS)[key] || "#64748b";
  }

  function drawSankey(graph, groupBy) {
    var box = $("sankey");
    var width = box.clientWidth, height = box.clientHeight;
    var svg = d3.select(box).selectAll("svg").data([null]).join("svg")
      .attr("width", width).attr("height", height).attr("role", "img");
    svg.selectAll("*").remove();
    if (!graph.nodes.length) {
      svg.append("text").attr("class", "empty").attr("x", width / 2).attr("y", height / 2)
        .attr("text-anchor", "middle").text("No interactions in this period.");
      return;
    }
    var labels = {};
    graph.nodes.forEach(function (n) { labels[n.key] = n.label; });
    labels[END_KEY] = "Journey ends";

    var nodes = [], links = [];
    graph.nodes.forEach(function (n) {
      nodes.push({ id: "from:" + n.key, key: n.key, side: "from", info: n });
    });
    var targets = {};
    graph.links.forEach(function (l) {
      targets[l.target] = true;
      links.push({ source: "from:" + l.source, target: "to:" + l.target, value: l.moves, info: l });
    });
    graph.nodes.forEach(function (n) {
      if (n.dropOffs > 0) {
        targets[END_KEY] = true;
        links.push({
          source: "from:" + n.key, target: "to:" + END_KEY, value: n.dropOffs,
          info: { source: n.key, target: END_KEY, moves: n.dropOffs, customers: n.dropOffCustomers,
                  share: n.dropOffRate, classification: null },
        });
      }
    });
    var order = graph.nodes.map(function (n) { return n.key; }).concat([END_KEY]);
    order.forEach(function (key) {
      if (targets[key]) nodes.push({ id: "to:" + key, key: key, side: "to" });
    });

    var labelSpace = 150;
    var sankey = d3.sankey()
      .nodeId(function (d) { return d.id; })
      .nodeWidth(14)
      .nodePadding(Math.max(14, Math.min(26, (height - 40) / Math.max(order.length, 1) / 2)))
      .nodeSort(function (a, b) { return order.indexOf(a.key) - order.indexOf(b.key); })
      .extent([[labelSpace, 8], [width - labelSpace, height - 8]]);
    var layout = sankey({
      nodes: nodes.map(function (d) { return Object.assign({}, d); }),
      links: links.map(function (d) { return Object.assign({}, d); }),
    });

    var linkColour = function (d) {
      if (d.target.key === END_KEY) return END_COLOUR;
      if (groupBy === "STAGE") return CLASS_COLOURS[d.info.classification] || STAY_COLOUR;
      return nodeColour(d.source.key, groupBy);
    };
    var link = svg.append("g").attr("class", "links").selectAll("path").data(layout.links).join("path")
      .attr("class", "link")
      .attr("d", d3.sankeyLinkHorizontal())
      .attr("stroke", linkColour)
      .attr("stroke-opacity", 0.38)
      .attr("stroke-width", function (d) { return Math.max(1, d.width); })
      .on("mousemove", function (event, d) {
        d3.select(this).attr("stroke-opacity", 0.75);
        var i = d.info;
        var what = d.target.key === END_KEY
          ? "<b>" + escapeHtml(labels[i.source]) + "</b> → journey ends"
          : "<b>" + escapeHtml(labels[i.source]) + "</b> → <b>" + escapeHtml(labels[i.target]) + "</b>";
        showTip(event, what + "<br>" + fmt(i.moves) + " moves · " + fmt(i.customers) +
          " customers<br>" + pct(i.share) + " of " + escapeHtml(labels[i.source]) + " interactions" +
          (i.classification ? "<br>" + i.classification.toLowerCase() : ""));
      })
      .on("mouseleave", function () { d3.select(this).attr("stroke-opacity", 0.38); hideTip(); });
    link.append("title").text(function (d) { return d.info.moves; });

    var node = svg.append("g").attr("class", "nodes").selectAll("g").data(layout.nodes).join("g");
    node.append("rect")
      .attr("x", function (d) { return d.x0; }).attr("y", function (d) { return d.y0; })
      .attr("width", function (d) { return d.x1 - d.x0; })
      .attr("height", function (d) { return Math.max(1, d.y1 - d.y0); })
      .attr("rx", 2)
      .attr("fill", function (d) { return nodeColour(d.key, groupBy); })
      .on("mousemove", function (event, d) {
        var html = "<b>" + escapeHtml(labels[d.key]) + "</b><br>";
        if (d.side === "from") {
          html += fmt(d.info.interactions) + " interactions<br>" + fmt(d.info.dropOffs) +
            " journeys ended here (" + pct(d.info.dropOffRate) + ")";
        } else {
          html += fmt(d.value) + (d.key === END_KEY ? " journeys ended" : " moves arrived");
        }
        showTip(event, html);
      })
      .on("mouseleave", hideTip);
    var text = node.append("text").attr("class", "node-label")
      .attr("x", function (d) { return d.side === "from" ? d.x0 - 8 : d.x1 + 8; })
      .attr("y", function (d) { return (d.y0 + d.y1) / 2; })
      .attr("dy", "0.35em")
      .attr("text-anchor", function (d) { return d.side === "from" ? "end" : "start"; });
    text.append("tspan").text(function (d) { return labels[d.key]; });
    text.append("tspan").attr("class", "count").attr("dx", 6).text(function (d) { return fmt(d.value); });

  }

  function drawLegend(graph, groupBy) {
    var items;
    if (groupBy === "STAGE") {
      items = [["FORWARD", "Forward"], ["BACKWARD", "Backward"], ["LOOPING", "Same stage, other channel"]]
        .map(function (p) { return { colour: CLASS_COLOURS[p[0]], label: p[1] }; });
      items.push({ colour: STAY_COLOUR, label: "Same stage and channel" });
    } else {
      items = graph.nodes.map(function (n) { return { colour: nodeColour(n.key, groupBy), label: n.label }; });
    }
    items.push({ colour: END_COLOUR, label: "Journey ends (no next interaction)" });
    $("legend").innerHTML = items.map(function (i) {
      return '<span><span class="swatch" style="background:' + i.colour + '"></span>' + escapeHtml(i.label) + "</span>";
    }).join("");
  }

  // --- funnel ----------------------------------------------------------------------------------

  function drawFunnel(steps) {
    var box = $("funnel");
    var width = box.clientWidth, height = box.clientHeight;
    var svg = d3.select(box).selectAll("svg").data([null]).join("svg")
      .attr("width", width).attr("height", height).attr("role", "img");
    svg.selectAll("*").remove();
    var max = d3.max(steps, function (s) { return s.customers; }) || 0;
    if (!max) {
      svg.append("text").attr("class", "empty").attr("x", width / 2).attr("y", height / 2)
        .attr("text-anchor", "middle").text("No stage changes in this period.");
      return;
    }
    var labelWidth = 104, rowGap = 26;
    var rowHeight = (height - 8 - rowGap * (steps.length - 1)) / steps.length;
    var barSpace = width - labelWidth - 8;
    var scale = d3.scaleLinear().domain([0, max]).range([0, barSpace]);
    var row = svg.selectAll("g.step").data(steps).join("g").attr("class", "step")
      .attr("transform", function (d, i) { return "translate(0," + (4 + i * (rowHeight + rowGap)) + ")"; });
    row.append("text").attr("class", "node-label").attr("x", 0).attr("y", rowHeight / 2).attr("dy", "0.35em")
      .text(function (d) { return d.stage.name; });
    row.append("rect").attr("class", "funnel-bar")
      .attr("x", function (d) { return labelWidth + (barSpace - scale(d.customers)) / 2; })
      .attr("width", function (d) { return Math.max(2, scale(d.customers)); })
      .attr("height", rowHeight).attr("rx", 4)
      .attr("fill", function (d) { return STAGE_COLOURS[d.stage.code]; })
      .on("mousemove", function (event, d) {
        showTip(event, "<b>" + escapeHtml(d.stage.name) + "</b><br>" + fmt(d.customers) + " customers entered" +
          (d.conversionToNext !== null ? "<br>" + pct(d.conversionToNext) + " went on to the next stage" : "") +
          "<br>median time in stage: " + duration(d.medianSecondsInStage));
      })
      .on("mouseleave", hideTip);
    row.append("text").attr("class", "node-label")
      .attr("x", labelWidth + barSpace / 2).attr("y", rowHeight / 2).attr("dy", "0.35em")
      .attr("text-anchor", "middle")
      .style("fill", function (d) { return scale(d.customers) > 60 ? "#fff" : "#0f172a"; })
      .style("font-weight", 600)
      .text(function (d) { return fmt(d.customers); });
    row.filter(function (d) { return d.conversionToNext !== null; }).append("text")
      .attr("class", "node-label").attr("x", labelWidth + barSpace / 2).attr("y", rowHeight + rowGap / 2)
      .attr("dy", "0.35em").attr("text-anchor", "middle")
      .style("fill", "#64748b").style("font-size", "11px")
      .text(function (d) { return "↓ " + pct(d.conversionToNext) + " to next · median " + duration(d.medianSecondsInStage) + " in stage"; });
  }

  // --- tables ----------------------------------------------------------------------------------

  function fillLinksTable(graph, groupBy) {
    var labels = {};
    graph.nodes.forEach(function (n) { labels[n.key] = n.label; });
    var dot = function (key) {
      return '<span class="dot" style="background:' + nodeColour(key, groupBy) + '"></span>';
    };
    var kind = { LOOPING: " (other channel)", FORWARD: "", BACKWARD: " (back)" };
    var rows = graph.links.slice(0, 10).map(function (l) {
      return "<tr><td>" + dot(l.source) + escapeHtml(labels[l.source]) + "</td><td>" + dot(l.target) +
        escapeHtml(labels[l.target]) + (l.classification ? kind[l.classification] : "") + "</td><td class=num>" + fmt(l.moves) + "</td><td class=num>" +
        fmt(l.customers) + "</td><td class=num>" + pct(l.share) + "</td></tr>";
    });
    if (!rows.length) rows = ['<tr><td colspan="5">No transitions in this period.</td></tr>'];
    document.querySelector("#links-table tbody").innerHTML = rows.join("");
  }

  function fillFunnelTable(steps) {
    document.querySelector("#funnel-table tbody").innerHTML = steps.map(function (s) {
      return '<tr><td><span class="dot" style="background:' + STAGE_COLOURS[s.stage.code] + '"></span>' +
        escapeHtml(s.stage.name) + "</td><td class=num>" + fmt(s.customers) + "</td><td class=num>" +
        (s.conversionToNext === null ? "–" : pct(s.conversionToNext)) + "</td><td class=num>" +
        duration(s.medianSecondsInStage) + "</td></tr>";
    }).join("");
  }

  // --- wiring ----------------------------------------------------------------------------------

  if (!window.d3 || !d3.sankey) {
    $("error").textContent = "The chart libraries are not installed on this server: run scripts/setup (needs Node.js and npm).";
    $("error").hidden = false;
    return;
  }
  window.HubKey.bind($("api-key"), load);
  $("period").addEventListener("change", function () {
    $("custom-range").hidden = $("period").value !== "custom";
    if ($("period").value !== "custom") load();
  });
  ["since", "until", "line", "segment", "group", "gap"].forEach(function (id) {
    $(id).addEventListener("change", load);
  });
  var resizeTimer = null;
  window.addEventListener("resize", function () {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(load, 200);
  });
  load();
})();
