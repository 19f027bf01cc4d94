// Analytics: store a snapshot of the current summary.
document.getElementById("snapshot")?.addEventListener("click", async () => {
  const response = await fetch("api/snapshot", {method: "POST"});
  const body = await response.json();
  document.getElementById("snapshot-status").textContent =
    response.ok ? "Stored a snapshot of " + body.pages + " pages" : (body.detail || response.status);
});
