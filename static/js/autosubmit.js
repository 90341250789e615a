// Submits a form marked data-autosubmit once the page has loaded. The redirects back
// from Calendly and from Checkout continue by POST (a GET never writes or calls a
// provider); without script, the form's own button does the same.
document.addEventListener("DOMContentLoaded", function () {
  var form = document.querySelector("form[data-autosubmit]");
  if (form) {
    form.submit();
  }
});
