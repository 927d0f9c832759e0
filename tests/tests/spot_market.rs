//! A replacement's market is the one its request names, once EC2 has merged the launch template.
//!
//! EC2 applies every launch-template setting a request leaves out, and RunInstances has no
//! "on-demand" market type: a request without market options launched from a template that asks
//! for Spot is Spot. So spot-recovery's On-Demand fallback (its second request, which names no
//! market) is On-Demand only if the template it launches from names none. The gateway stack's
//! replacement template (GatewayLaunchTemplate, the one spot-recovery is given) names none; the
//! stack's first instance, when Spot, comes from its twin GatewaySpotLaunchTemplate. The emulator
//! merges a template's market as EC2 does (testbed/fake_launch_template.py), so the launches below
//! come up as they would on AWS, the rendered templates' own data included.

use aws_sdk_ec2::types::{
    InstanceMarketOptionsRequest, LaunchTemplateInstanceMarketOptionsRequest, LaunchTemplateSpecification,
    LaunchTemplateSpotMarketOptionsRequest, MarketType, RequestLaunchTemplateData, ShutdownBehavior, SpotInstanceType,
    SpotMarketOptions,
};
use integration_tests::emulator::Emulator;
use integration_tests::gateway_stack::tier;
use serde_json::Value;

/// The rendered template's market and type, in a launch template of the emulator (the image is
/// one of the emulator's: the rendered one is a dynamic reference to SSM).
async fn create_template(ec2: &aws_sdk_ec2::Client, name: &str, data: &Value, image: &str) -> String {
    let mut request = RequestLaunchTemplateData::builder()
        .image_id(image)
        .instance_type(data["InstanceType"].as_str().unwrap().into());
    if let Some(market) = data.get("InstanceMarketOptions") {
        let spot = &market["SpotOptions"];
        request = request.instance_market_options(
            LaunchTemplateInstanceMarketOptionsRequest::builder()
                .market_type(market["MarketType"].as_str().unwrap().into())
                .spot_options(
                    LaunchTemplateSpotMarketOptionsRequest::builder()
                        .spot_instance_type(spot["SpotInstanceType"].as_str().unwrap().into())
                        .instance_interruption_behavior(spot["InstanceInterruptionBehavior"].as_str().unwrap().into())
                        .build(),
                )
                .build(),
        );
    }
    ec2.create_launch_template()
        .launch_template_name(name)
        .launch_template_data(request.build())
        .send()
        .await
        .unwrap()
        .launch_template
        .unwrap()
        .launch_template_id
        .unwrap()
}

/// Launches one instance from `template` as spot-recovery's requests do (Spot: market options;
/// On-Demand: none) and answers its lifecycle as DescribeInstances reports it.
async fn lifecycle(ec2: &aws_sdk_ec2::Client, template: &str, spot: bool) -> Option<String> {
    let mut request = ec2
        .run_instances()
        .launch_template(
            LaunchTemplateSpecification::builder().launch_template_id(template).version("$Default").build(),
        )
        .min_count(1)
        .max_count(1)
        .instance_initiated_shutdown_behavior(ShutdownBehavior::Terminate);
    if spot {
        request = request.instance_market_options(
            InstanceMarketOptionsRequest::builder()
                .market_type(MarketType::Spot)
                .spot_options(SpotMarketOptions::builder().spot_instance_type(SpotInstanceType::OneTime).build())
                .build(),
        );
    }
    let id = request.send().await.unwrap().instances()[0].instance_id().unwrap().to_owned();
    let described = ec2.describe_instances().instance_ids(&id).send().await.unwrap();
    described.reservations()[0].instances()[0].instance_lifecycle().map(|l| l.as_str().to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_on_demand_fallback_from_the_replacement_template_is_on_demand_and_the_first_spot_instance_is_spot() {
    let emulator = Emulator::start().await.unwrap();
    let ec2 = aws_sdk_ec2::Client::new(&emulator.admin().await);
    let image = ec2.describe_images().owners("amazon").send().await.unwrap().images()[0].image_id().unwrap().to_owned();
    for name in ["full", "budget"] {
        let t = tier(name);
        let data = |id: &str| t["Resources"][id]["Properties"]["LaunchTemplateData"].clone();
        let replacement =
            create_template(&ec2, &format!("{name}-replacement"), &data("GatewayLaunchTemplate"), &image).await;
        let first =
            create_template(&ec2, &format!("{name}-first-spot"), &data("GatewaySpotLaunchTemplate"), &image).await;

        assert_eq!(lifecycle(&ec2, &replacement, false).await, None, "{name}: the On-Demand fallback is On-Demand");
        assert_eq!(
            lifecycle(&ec2, &replacement, true).await.as_deref(),
            Some("spot"),
            "{name}: the Spot attempt is Spot"
        );
        // What the fallback used to launch from: a template asking for Spot makes the request Spot.
        assert_eq!(
            lifecycle(&ec2, &first, false).await.as_deref(),
            Some("spot"),
            "{name}: the emulator must merge a template's market as EC2 does"
        );
    }
}
