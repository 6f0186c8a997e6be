//! The operator console's lists of applications (OAuth clients) and certificates: who may read them, and that they
//! show what the participants registered.

use crate::common;

use crate::common::Platform;
use crate::common::browser::{Browser, bin, operator_user};
use crate::common::participant::{accredit, admin_of_new_organisation, client_id, register_app, serials};
use kopir::identity::Role;

#[tokio::test]
async fn operator_and_regulator_see_clients_and_certificates_participants_do_not() {
    let platform = Platform::start().await;
    let bank_bin = bin("99014000055");
    let bank = admin_of_new_organisation(&platform, &bank_bin, "Oasis Bank JSC", "oasis.admin").await;
    accredit(&platform, &bank_bin).await;
    let csr = common::Csr::new("oasis-gateway");
    let page = register_app(&bank, "Oasis wallet", "api_user", "https://wallet.oasis.kz/cb", &csr.csr_pem).await;
    let client = client_id(&page);
    let serial = serials(&page).remove(0);

    for (name, role) in [("aliya.ops", Role::OperatorStaff), ("regulator.nb", Role::Regulator)] {
        let password = operator_user(&platform, name, role).await;
        let mut reader = Browser::new(&platform);
        let landed = reader.sign_in(name, &password).await;
        assert!(landed.url.ends_with("/console"), "{}", landed.url);
        let clients = reader.get("/console/clients").await;
        assert_eq!(clients.status, 200);
        clients.assert_contains("Oasis Bank JSC").assert_contains("Oasis wallet").assert_contains(&client);
        clients.assert_contains("https://wallet.oasis.kz/cb");
        let certificates = reader.get("/console/certificates").await;
        certificates.assert_contains(&serial).assert_contains("platform client");
        let found = reader.get(&format!("/console/certificates?q={client}")).await;
        found.assert_contains(&serial);
        assert!(!found.body.contains("platform client"), "the search did not filter");
        let none = reader.get("/console/certificates?q=%25_nothing").await;
        none.assert_contains("No certificate matches.");
        // Read-only lists: no form posts anything but the search and sign-out.
        assert!(!certificates.body.contains("method=\"post\" action=\"/console"));
    }

    // A participant, even an administrator, is refused; a visitor is sent to sign in.
    assert_eq!(bank.get("/console/clients").await.status, 403);
    assert_eq!(bank.get("/console/certificates").await.status, 403);
    let stranger = Browser::new(&platform);
    assert!(stranger.get("/console/certificates").await.url.ends_with("/login"));
    platform.shutdown().await;
}
