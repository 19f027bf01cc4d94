// Catalog: keyboard paging (left/right arrows).
document.addEventListener("keydown", (ev) => {
  const pager = document.querySelector(".pager");
  if (!pager) return;
  const page = Number(pager.dataset.page), pages = Number(pager.dataset.pages);
  const url = new URL(location.href);
  if (ev.key === "ArrowRight" && page < pages) url.searchParams.set("page", page + 1);
  else if (ev.key === "ArrowLeft" && page > 1) url.searchParams.set("page", page - 1);
  else return;
  location.href = url.toString();
});
