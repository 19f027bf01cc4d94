// Click tracker: send one click per button press.
const statusLine = document.getElementById("click-status");
document.querySelectorAll("button.tracked").forEach((button) => {
  button.addEventListener("click", async () => {
    const response = await fetch("api/click", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({page: button.dataset.page, element: button.dataset.element}),
    });
    statusLine.textContent = response.ok ? "Recorded a click on " + button.dataset.page : "Failed: " + response.status;
  });
});
